"""Choose the supervised baseline's Adam steps and learning rate on held-out glyph tasks.

    OMP_NUM_THREADS=1 python examples/transfer/tune_supervised.py [OUT_JSON] [--tasks 10] [--trials 2] [--quick]

The tasks are those of ``refimpl eval`` on glyphs_rotation (10-way 10-shot, 10
query examples per class, random input permutation), from the ``select``
font families (STIX General), support and query from different fonts: no
evaluation dataset (digits, moons, Fashion-MNIST, the ``final`` glyph
families) is used. For each base net (the small rule's [196, 64, 64, 16] and
the paper's [196, 128 x 4, 32]) and each learning rate, the network is
trained once on each trial's support set and read out (the SPEC 6 ridge
readout of its top layer, as in the benchmark) after each step count of the
grid. The choice per net is the (steps, lr) with the best mean accuracy;
the JSON holds every cell (mean and standard error over tasks).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from refimpl.data import get_dataset
from refimpl.evaluation import baselines as bl
from refimpl.evaluation.benchmark import _trials
from refimpl.evaluation.fewshot import readout_accuracy
from refimpl.train.presets import train_preset

STEPS = (30, 100, 300, 1000)
LRS = (1e-3, 3e-3, 1e-2)
NETS = {"small": (64, 64, 16), "paper": (128, 128, 128, 128, 32)}


def tune(n_tasks=10, n_trials=2, steps=STEPS, lrs=LRS, nets=NETS, progress=True):
    from autograd import grad
    from autograd.misc.flatten import flatten

    ridge = train_preset("small").model.ridge
    ds = get_dataset("glyphs_rotation")
    g = grad(bl.supervised_loss)
    cells = {}
    for net, widths in nets.items():
        sizes = (ds.n_features, *widths)
        for lr in lrs:
            acc = np.zeros((n_tasks, len(steps)))
            for t in range(n_tasks):
                task_rng = np.random.default_rng([1000 + t, 0])
                task = ds.sample_classes(task_rng, 10)
                task = task.permuted(task.random_permutation(task_rng))
                trials = _trials(task, np.random.default_rng([1000 + t, 2]), 10, 10, n_trials, np.float64)
                per_trial = np.zeros((n_trials, len(steps)))
                for i, (xs, ys, xq, yq) in enumerate(trials):
                    rng = np.random.default_rng([1000 + t, 4, i])
                    params = bl.supervised_init(rng, sizes, task.n_classes)
                    opt = bl.AdamStepper(params, lr)
                    labels = np.argmax(ys, axis=1)
                    done = 0
                    for j, s in enumerate(steps):
                        while done < s:
                            gflat, _ = flatten(g(params, (xs, labels)))
                            params = opt.step(gflat)
                            done += 1
                        f_s, f_q = np.asarray(bl._mlp(params[0], xs)), np.asarray(bl._mlp(params[0], xq))
                        per_trial[i, j] = readout_accuracy(f_s, ys, f_q, yq, task.n_classes, ridge)
                acc[t] = per_trial.mean(axis=0)
            for j, s in enumerate(steps):
                col = acc[:, j]
                cells[(net, s, lr)] = (float(col.mean()), float(col.std(ddof=1) / np.sqrt(n_tasks)))
            if progress:
                print(f"{net} lr {lr:g}: " + ", ".join(f"{s}: {cells[(net, s, lr)][0]:.3f}" for s in steps),
                      file=sys.stderr, flush=True)
    return cells


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    args = [a for a in argv if a != "--quick"]
    kw = dict(n_tasks=2, n_trials=1, steps=(5, 10), lrs=(1e-3, 1e-2)) if quick else {}
    for flag, key in (("--tasks", "n_tasks"), ("--trials", "n_trials")):
        if flag in args:
            i = args.index(flag)
            kw[key] = int(args[i + 1])
            del args[i:i + 2]
    out = Path(args[0]) if args else Path("docs/transfer/supervised_tuning.json")
    t0 = time.perf_counter()
    cells = tune(**kw)
    nets = sorted({k[0] for k in cells})
    chosen = {}
    for net in nets:
        best = max((k for k in cells if k[0] == net), key=lambda k: cells[k][0])
        chosen[net] = {"steps": best[1], "lr": best[2], "accuracy": cells[best][0], "accuracy_se": cells[best][1]}
    doc = {
        "what": "the supervised baseline's Adam steps and learning rate, chosen on held-out glyph tasks",
        "tasks": "glyphs_rotation, select font families (STIX General), 10-way 10-shot, 10 queries/class, "
                 "support and query from different fonts, random input permutation; tasks seeded "
                 "[1000 + t, 0], trials [1000 + t, 2]",
        "n_tasks": kw.get("n_tasks", 10), "n_trials": kw.get("n_trials", 2),
        "criterion": "best mean few-shot accuracy of the ridge readout (ridge 0.1) of the net's top layer",
        "nets": {n: [196, *NETS[n]] for n in nets},
        "grid": [{"net": k[0], "steps": k[1], "lr": k[2], "accuracy": v[0], "accuracy_se": v[1]}
                 for k, v in sorted(cells.items())],
        "chosen": chosen,
        "seconds": round(time.perf_counter() - t0, 1),
        "command": "OMP_NUM_THREADS=1 python examples/transfer/tune_supervised.py " + " ".join(argv),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(chosen, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
