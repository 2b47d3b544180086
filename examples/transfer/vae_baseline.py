"""The paper-sized VAE baseline on the evaluation's own tasks, with its loss curves (JSON and PNG); or, with
``--baseline supervised``, the supervised baseline (``supervised_<dataset>_<arch>.json``, no curves).

    OMP_NUM_THREADS=1 python examples/transfer/vae_baseline.py OUT_DIR DATASET [DATASET ...] [--arch rule|paper]
        [--rule small-glyphs-rotation] [--seeds 10]

For each dataset: ``refimpl.evaluation.benchmark.benchmark`` with only the VAE
(and phi_0 and raw inputs, so that the result can be paired with and merged into a full
evaluation on the same seeds, tasks and labeled trials, as
``examples/transfer/final_eval.py`` does with cached baselines; the raw row, which does not depend
on the base net, pairs it with an evaluation of the other ``--arch`` too: the VAE's tasks, trials and
fit do not depend on the base net, only its latent, min(32, N^L), does). The VAE is the
paper's (3 hidden layers of 128 with batch norm, latent 32 or N^L when the base
net's top is narrower, Adam 1e-4), fitted on a part of the dataset's unlabeled
train split and stopped when its loss on the other part (validation) has not
improved for ``patience`` checks (``VAE_DEFAULTS``). Writes
``OUT_DIR/vae_<dataset>_<arch>.json`` (the benchmark result with every seed's
validation and training curve) and ``.png`` (the curves), after every seed; a second run continues with
the seeds not yet in the JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def plot_curves(result, path, title):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    FigureCanvasAgg(fig)
    ax_t, ax_v = fig.subplots(1, 2)
    for rec in result["per_seed"]:
        c = rec["vae_curve"]
        ax_t.plot([50 * i for i in range(len(c["train_every_50"]))], c["train_every_50"], lw=0.8,
                  label=f"seed {rec['seed']}")
        steps, losses = zip(*c["valid"])
        line, = ax_v.plot(steps, losses, "o-", ms=2, lw=0.8)
        ax_v.axvline(c["best_step"], color=line.get_color(), ls=":", lw=0.6)
    ax_t.set_title("training loss (negative ELBO, mean of 50 steps)", fontsize=8)
    ax_v.set_title("validation loss; dotted: the step kept", fontsize=8)
    for ax in (ax_t, ax_v):
        ax.set_xlabel("Adam step")
    ax_t.legend(fontsize=6)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def main(argv=None) -> int:
    from refimpl.data import get_dataset
    from refimpl.evaluation.benchmark import benchmark, summarize
    from refimpl.evaluation.suite import ARCHS, resolve_rule
    from refimpl.npzio import atomic_write_bytes
    from refimpl.runtime import blas_single_thread

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("datasets", nargs="+")
    p.add_argument("--arch", choices=tuple(ARCHS), default="rule")
    p.add_argument("--rule", default="small-glyphs-rotation", help="whose config sets the base net (arch rule)")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--only-seeds", default=None, metavar="A,B,...",
                   help="fit only these seeds, in this order (e.g. a second process taking the last seeds first); "
                        "files of disjoint seeds merge with refimpl.evaluation.benchmark.merge_seeds")
    p.add_argument("--baseline", choices=("vae", "supervised"), default="vae",
                   help="the slow theta-free baseline to fit (supervised: SUPERVISED_DEFAULTS on each trial's labels)")
    args = p.parse_args(argv)
    _, config, _, _ = resolve_rule(args.rule)
    hidden, top = ARCHS[args.arch] if ARCHS[args.arch] is not None else (None, None)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        ds = get_dataset(name)
        way = 10 if ds.n_classes > 10 else None
        stem = out / f"{args.baseline}_{name}_{args.arch}"
        done = json.loads(stem.with_suffix(".json").read_text())["per_seed"] if stem.with_suffix(".json").is_file() \
            else []
        order = range(args.seeds) if args.only_seeds is None else [int(x) for x in args.only_seeds.split(",")]
        for seed in order:                          # one seed at a time, written after each: resumable
            if any(r["seed"] == seed for r in done):
                continue
            with blas_single_thread():
                res = benchmark(None, config, ds, seeds=[seed], k_shot=10, k_query=10, n_trials=10,
                                n_way=way, hidden=hidden, top=top, baselines=("raw", args.baseline))
            done = sorted(done + res["per_seed"], key=lambda r: r["seed"])
            res["per_seed"], res["summary"] = done, summarize(done)
            res["rule_config_from"] = args.rule
            res["arch"] = args.arch
            text = json.dumps(res, indent=1) + "\n"        # whole or not at all: a kill keeps the last seed's file
            atomic_write_bytes(stem.with_suffix(".json"), lambda f, t=text: f.write(t.encode()))
            if args.baseline == "vae":
                plot_curves(res, stem.with_suffix(".png"),
                            f"VAE {res['budgets']['vae']['hidden']} latent {res['budgets']['vae']['latent']} on "
                            f"{name} (net {res['layer_sizes']}), {len(done)} seeds")
        rows = {r["method"]: r for r in summarize(done)}
        b = args.baseline
        print(f"{name} {args.arch}: {b} {rows[b]['acc']:.3f} ± {rows[b]['acc_se']:.3f}, phi_0 {rows['rule@0']['acc']:.3f}"
              + (f"; stopped at {[r['vae_curve']['stopped_at'] for r in done]}" if b == "vae" else ""),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
