"""The recipe of a shipped rule: a meta-training run with theta snapshots and a probe log.

    python -m refimpl.cli.recipe RUN_DIR [--preset small] [--seed 0] [--minutes 75]
                                 [--steps N] [--exclude-classes digits]

Runs :func:`refimpl.train.run` (same files as ``refimpl train``; a run
already in RUN_DIR is continued bit for bit, for another ``--minutes``, after
checking that the flags agree with its stored settings) and, through its ``on_step``
hook (which does not touch the training state), every ``--snapshot-every``
meta-steps:

- copies theta to ``RUN_DIR/thetas/theta_<step>.npz`` (theta-only, as
  ``save_params(..., kind="theta")``), so intermediate rules can be evaluated;
- appends one line to ``RUN_DIR/probe.jsonl``: :func:`refimpl.evaluation.probe.probe_rule`
  on the fixed probe task (J, accuracy, effective rank, mean |correlation|,
  zero rows, dead units after 0, 25, 50 and 100 inner steps).

``--exclude-classes`` (comma-separated class or class-set names, e.g.
``digits``) removes those classes from every meta-training task: the control
that shows whether a rule's gain on digits needs digit glyphs in training.
``--steps`` sets the total number of meta-steps (default: the preset's).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from refimpl.params import save_params

PROBE_FILE = "probe.jsonl"
SNAPSHOT_DIR = "thetas"


def snapshot_hook(run_dir, tc, every: int, probe_steps=(0, 25, 50, 100)):
    """The ``on_step`` callback: theta snapshot and probe line (after ``probe_steps`` inner steps)
    every ``every`` meta-steps."""
    from refimpl.evaluation.probe import probe_rule

    run_dir = Path(run_dir)
    (run_dir / SNAPSHOT_DIR).mkdir(exist_ok=True)

    def on_step(state, record):
        if state.step % every:
            return
        save_params(run_dir / SNAPSHOT_DIR / f"theta_{state.step:05d}.npz", state.theta, tc.model, kind="theta")
        t = time.perf_counter()
        rows = probe_rule(state.theta, tc.model, inner_steps=probe_steps)
        line = {"step": state.step, "probe": rows, "probe_seconds": round(time.perf_counter() - t, 2)}
        with open(run_dir / PROBE_FILE, "a") as f:
            f.write(json.dumps(line) + "\n")
    return on_step


def main(argv=None) -> int:
    from refimpl.train import CHECKPOINT_FILE, run, train_preset

    p = argparse.ArgumentParser(prog="python -m refimpl.cli.recipe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--preset", default="small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=75.0)
    p.add_argument("--snapshot-every", type=int, default=100)
    p.add_argument("--steps", type=int, default=None, help="total meta-steps (default: the preset's n_steps)")
    p.add_argument("--exclude-classes", default="",
                   help="comma-separated class or class-set names never used in meta-training (e.g. digits)")
    args = p.parse_args(argv)
    if args.snapshot_every < 1 or args.minutes <= 0 or (args.steps is not None and args.steps < 1):
        print("recipe: --snapshot-every and --steps must be >= 1 and --minutes > 0", file=sys.stderr)
        return 2
    from refimpl.runtime import RunDirError
    try:
        tc = train_preset(args.preset).replace(seed=args.seed)
        excluded = tuple(t.strip() for t in args.exclude_classes.split(",") if t.strip())
        if excluded:
            tc = tc.replace(exclude_classes=excluded)
            from refimpl.train.tasks import training_view
            for name in tc.datasets:        # unknown names fail here, before any file is written
                training_view(tc, name)
    except ValueError as e:
        print(f"recipe: {e}", file=sys.stderr)
        return 2
    resume = (Path(args.run_dir) / CHECKPOINT_FILE).exists()
    if not resume:
        Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    hook = snapshot_hook(args.run_dir, tc, args.snapshot_every)
    try:
        return run(args.run_dir, tc, resume=resume, quiet=False, on_step=hook, n_steps=args.steps,
                   max_seconds=60.0 * args.minutes)
    except RunDirError as e:
        print(f"recipe: {e}", file=sys.stderr)
        return 2


def plot_probe(run_dir, path=None):
    """Probe curves (J, accuracy, effective rank, mean |correlation| against meta-step, one line per
    inner-step count) from ``RUN_DIR/probe.jsonl`` to ``path`` (default ``RUN_DIR/probe.png``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from refimpl.npzio import atomic_write_bytes

    run_dir = Path(run_dir)
    lines = [json.loads(t) for t in (run_dir / PROBE_FILE).read_text().splitlines() if t.strip()]
    if not lines:
        raise ValueError(f"plot_probe: {run_dir / PROBE_FILE} has no probe lines")
    keys = ("J", "accuracy", "effective_rank", "mean_abs_corr")
    fig = Figure(figsize=(16, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    for inner in sorted({p["step"] for line in lines for p in line["probe"]}):
        pts = [(line["step"], p) for line in lines for p in line["probe"] if p["step"] == inner and "J" in p]
        for ax, key in zip(axes, keys):
            ax.plot([s for s, _ in pts], [p[key] for _, p in pts], marker="o", markersize=3,
                    label=f"{inner} inner steps")
    for ax, key in zip(axes, keys):
        ax.set_xlabel("meta-step")
        ax.set_title(key.replace("_", " "))
    axes[0].legend(fontsize=8)
    fig.suptitle("probe task: glyphs (rotated), held-out fonts, 20-way 10-shot")
    fig.tight_layout()
    path = run_dir / "probe.png" if path is None else Path(path)
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=100))
    return path


if __name__ == "__main__":
    sys.exit(main())
