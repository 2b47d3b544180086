"""``make demo`` / ``refimpl demo``: the shipped rule against every baseline, a glyph control, and a short
meta-training with its curves.

1. **Transfer.** :func:`refimpl.evaluation.suite.evaluate_rule` of the
   shipped rule (:data:`DEMO_RULE`) on held-out digits and moons, and
   Fashion-MNIST 14x14 when its Debian package is installed, 10-shot, at 0
   and the rule's recommended inner steps, against raw, ink, PCA, VAE and
   supervised. The VAE and supervised baselines get a reduced training
   budget (``vae_steps``, ``supervised_steps``) so that the demo fits its
   time; the tables say so.
2. **Glyph control.** The same on glyphs (rotated, in fonts held out of
   meta-training), 10-way 10-shot, where random features beat the
   one-feature ink solution on the meta-objective: it separates "the rule
   learned nothing" from "what it learned does not transfer".
3. **Meta-training.** About ``minutes`` minutes of the trainer's ``small``
   preset from scratch (the previous demo's run there is removed first, and
   the demo says so; ``continue_run=True``, ``refimpl demo --continue``,
   continues it instead), then its curves
   as ``curves.png``. The default 3.5 minutes (the meta-steps they buy:
   benchmarks/RESULTS.md, "make demo") reach the point where J starts to fall (in the shipped
   rule's run, from a mean of 0.55 over its first 150 meta-steps to 0.48-0.51
   over steps 175-300); that run took 1100 meta-steps.

Outputs go to ``run_dir`` (default ``runs/demo``): ``transfer/``,
``glyph_control/`` (report.md, report.json, accuracy.png, inner_steps.png)
and ``meta_training/`` (the run and curves.png); each run replaces the
previous demo's files there (only those). A dataset that is not installed
(Fashion-MNIST) is named as skipped in the output and in the report.
Progress goes to stderr, as plain lines when stderr is not a terminal.
Arguments are checked before any work. Ctrl-C names the part it interrupted.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

#: The rule the demo evaluates (a name under refimpl/pretrained/rules).
DEMO_RULE = "small-glyphs-rotation"
DEMO_DATASETS = ("digits", "moons", "fashion_mnist14")
#: The demo's budget (it must finish within the README's stated time on 2 cores, set-up included).
DEMO_SEEDS = 5
DEMO_MINUTES = 3.5
CONTROL = {"dataset": "glyphs_rotation", "n_way": 10, "k_shot": 10, "baselines": ("raw", "ink", "pca")}


def _say(out, text):
    print(f"demo: {text}", file=out, flush=True)


def train_for(run_dir, minutes: float, preset: str = "small", *, out=None) -> int:
    """Meta-train in ``run_dir`` for about ``minutes`` minutes with the trainer's ``preset`` (continuing a
    run already there); the trainer's progress on stderr (plain lines with a rate and an ETA when it is
    not a terminal; ``out`` is not used). Returns the number of meta-steps now in the run."""
    from refimpl.train import CHECKPOINT_FILE, EXIT_INTERRUPTED, load_checkpoint, run, train_preset

    out = sys.stderr if out is None else out
    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINT_FILE
    tc = train_preset(preset)
    resume = ckpt.exists()
    if minutes > 0:
        # The trainer's own progress: a bar on a terminal, plain lines with rate and ETA otherwise.
        status = run(run_dir, None if resume else tc, resume=resume, n_steps=tc.n_steps, quiet=False,
                     max_seconds=60.0 * float(minutes))
        if status == EXIT_INTERRUPTED:
            raise KeyboardInterrupt(f"meta-training interrupted; checkpoint in {ckpt}")
        if status != 0:
            raise RuntimeError(f"train_for: the trainer returned status {status}")
    return load_checkpoint(ckpt)[0].step if ckpt.exists() else 0


def _check_existing_run(train_dir: Path, continue_run: bool) -> bool:
    """Up front: a run already in ``train_dir`` must be readable when it is continued, and one of ours
    (a readable train_config.json) when it is replaced. Returns whether ``train_dir`` holds a run."""
    from refimpl.train import CHECKPOINT_FILE, CONFIG_FILE, TrainConfig, load_checkpoint
    from refimpl.train.rundir import RUN_FILES

    ckpt = train_dir / CHECKPOINT_FILE
    held = [n for n in RUN_FILES if (train_dir / n).exists()]
    if held and not continue_run:
        try:
            TrainConfig.from_json((train_dir / CONFIG_FILE).read_text())
        except (OSError, ValueError, TypeError, KeyError):
            raise ValueError(f"{train_dir} holds {', '.join(held)} but no readable {CONFIG_FILE}: not a demo run "
                             f"to replace; remove it or use another --run-dir") from None
        return True
    if ckpt.exists():
        try:
            load_checkpoint(ckpt)
        except (ValueError, OSError, KeyError) as e:
            raise ValueError(f"the meta-training checkpoint {ckpt} is unreadable ({' '.join(str(e).split())}); "
                             f"run the demo without --continue to start a new run") from None
    return bool(held)


def _remove_previous_run(train_dir: Path) -> None:
    """The trainer's files of the previous demo run (checked by _check_existing_run), nothing else."""
    from refimpl.train.rundir import RUN_FILES

    for name in RUN_FILES:
        (train_dir / name).unlink(missing_ok=True)


def _default_plot(run_dir) -> list:
    from refimpl.train.plot import plot_run

    return [plot_run(run_dir)]


def demo_datasets(names=DEMO_DATASETS, skipped=None) -> tuple:
    """``names`` without the datasets that are not installed (Fashion-MNIST needs its Debian package);
    ``skipped`` (a dict), when given, receives name -> why for each one left out."""
    from refimpl.data import get_dataset

    kept = []
    for name in names:
        try:
            get_dataset(name)
        except FileNotFoundError as e:
            if skipped is not None:
                skipped[name] = "not installed: " + " ".join(str(e).split())
            continue
        kept.append(name)
    return tuple(kept)


def run_demo(run_dir="runs/demo", *, rule: str = DEMO_RULE, minutes: float = DEMO_MINUTES, seeds: int = DEMO_SEEDS,
             n_trials: int = 5, vae_steps: int = 300, supervised_steps: int = 100, datasets=None,
             control: bool = True, continue_run: bool = False, evaluate_fn=None, train_fn=None, plot_fn=None,
             out=None) -> dict:
    """The demo (see the module docstring). ``evaluate_fn``, ``train_fn``, ``plot_fn`` replace
    :func:`evaluate_rule`, :func:`train_for` and the trainer's ``plot_run`` (tests inject stubs).
    Returns ``{"transfer", "control", "meta_steps", "paths", "seconds"}``."""
    from refimpl.evaluation.reporting import format_report
    from refimpl.evaluation.suite import evaluate_rule, resolve_rule
    from refimpl.runtime import check_run_dir

    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not math.isfinite(minutes) \
            or minutes < 0:
        raise ValueError(f"run_demo: minutes must be a finite number >= 0, got {minutes!r}")
    for name, value in (("seeds", seeds), ("n_trials", n_trials)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"run_demo: {name} must be an integer >= 1, got {value!r}")
    out = sys.stderr if out is None else out
    _, _, _, info = resolve_rule(rule)                  # an unknown rule fails here, before any work
    run_dir = check_run_dir(run_dir, create=True)
    train_dir = run_dir / "meta_training"
    previous_run = _check_existing_run(train_dir, continue_run)
    evaluate_fn = evaluate_rule if evaluate_fn is None else evaluate_fn
    train_fn = train_for if train_fn is None else train_fn
    plot_fn = _default_plot if plot_fn is None else plot_fn
    skipped = {}
    datasets = demo_datasets(skipped=skipped) if datasets is None else tuple(datasets)
    steps = sorted({0, int(info.get("recommended_inner_steps", 100))})
    t0 = time.perf_counter()
    result = {"paths": {}, "seconds": {}, "skipped": skipped}
    stage = ["setting up"]

    def part(text):
        stage[0] = text
        _say(out, text)

    try:
        for name, why in skipped.items():
            _say(out, f"skipped dataset {name}: {why}")
        part(f"1/3 transfer: rule {rule} on {', '.join(datasets)}, 10-shot, inner steps {steps}, {seeds} seeds "
             f"(VAE {vae_steps} steps, supervised {supervised_steps} steps: reduced budgets)")
        # force: the demo replaces its own previous reports (and only those files) each time
        result["transfer"] = evaluate_fn(rule, datasets, k_shot=10, inner_steps=steps, seeds=seeds,
                                         n_trials=n_trials, vae_steps=vae_steps, supervised_steps=supervised_steps,
                                         out_dir=run_dir / "transfer", force=True, skipped=skipped,
                                         reduced_budget=True)
        print(format_report(result["transfer"]), flush=True)
        result["seconds"]["transfer"] = round(time.perf_counter() - t0, 1)
        result["control"] = None
        if control:
            t1 = time.perf_counter()
            part(f"2/3 glyph control: {CONTROL['dataset']} in held-out fonts, {CONTROL['n_way']}-way "
                 f"{CONTROL['k_shot']}-shot (random features beat ink here)")
            result["control"] = evaluate_fn(rule, (CONTROL["dataset"],), k_shot=CONTROL["k_shot"],
                                            inner_steps=steps, seeds=seeds, n_trials=n_trials, n_way=CONTROL["n_way"],
                                            baselines=CONTROL["baselines"], out_dir=run_dir / "glyph_control",
                                            force=True)
            print(format_report(result["control"]), flush=True)
            result["seconds"]["control"] = round(time.perf_counter() - t1, 1)
        t2 = time.perf_counter()
        if previous_run and continue_run:
            how = "continuing the previous demo's run"
        elif previous_run:
            _remove_previous_run(train_dir)
            how = "from scratch (the previous demo's run there removed; --continue continues it)"
        else:
            how = "from scratch"
        part(f"3/3 meta-training the small preset for about {minutes:g} min in {train_dir}, {how}")
        result["meta_steps"] = train_fn(train_dir, minutes)
    except KeyboardInterrupt as e:
        detail = f"; {e}" if str(e) else ""
        raise KeyboardInterrupt(f"during {stage[0]}{detail}") from None
    for i, p in enumerate(plot_fn(train_dir) or []):
        result["paths"][f"training_plot{i}"] = Path(p)
    result["seconds"]["meta_training"] = round(time.perf_counter() - t2, 1)
    for part in ("transfer", "control"):
        if result[part] is not None:
            result["paths"].update({f"{part}_{k}": Path(v) for k, v in result[part].get("paths", {}).items()})
    for p in result["paths"].values():
        _say(out, f"wrote {p}")
    _say(out, f"done in {time.perf_counter() - t0:.0f} s")
    return result
