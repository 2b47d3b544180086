"""Your own data and your own rule variant, end to end: evaluate a rule on your arrays, then meta-train a
variant of the rule on them (a few seconds; `--steps` for more).

    .venv/bin/python examples/own_experiment.py --out runs/own_experiment

1. Your data: four arrays (x_train, y_train, x_test, y_test; inputs in [0, 1],
   one label per row) become a Dataset with refimpl.data.from_arrays, or an
   .npz file that every command takes where it takes a dataset name.
2. Evaluate the shipped rule on it (refimpl.evaluate_rule, as `refimpl eval
   small-glyphs-rotation --datasets mine.npz`).
3. Your rule variant: a (theta, config) pair with another activation, evaluated
   the same way, and meta-trained on your data (as `refimpl train --datasets
   mine.npz --set model.activation=tanh`).
"""
import argparse
from pathlib import Path

import numpy as np

import refimpl
from refimpl.data import from_arrays, register_dataset
from refimpl.train import run, train_preset


def make_arrays(rng):
    """Three Gaussian blobs in 16 dimensions, squashed into [0, 1]: stand-ins for your own data."""
    centres = rng.normal(size=(3, 16))

    def split(n):
        y = rng.integers(3, size=n)
        x = 1 / (1 + np.exp(-(centres[y] + 0.7 * rng.normal(size=(n, 16)))))
        return x.astype(np.float32), y
    return (*split(300), *split(150))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/own_experiment", help="output directory (default runs/own_experiment)")
    parser.add_argument("--steps", type=int, default=3, help="meta-steps of the variant (default 3)")
    parser.add_argument("--seeds", type=int, default=2, help="evaluation seeds (default 2)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. The data, as a Dataset and as an .npz file (the command line's way in).
    x_train, y_train, x_test, y_test = make_arrays(np.random.default_rng(0))
    mine = from_arrays(x_train, y_train, x_test, y_test, name="blobs")
    np.savez(out / "blobs.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    print(mine)

    # 2. The shipped rule on it, against the baselines (raw and ink here, to stay quick).
    settings = dict(inner_steps=[0, 10], seeds=args.seeds, baselines=["raw"], n_trials=2, progress=False)
    report = refimpl.evaluate_rule("small-glyphs-rotation", [mine], **settings)
    for row in report["datasets"]["blobs"]["summary"]:
        print(f"shipped rule  {row['method']:>8}: accuracy {row['acc']:.3f} ± {row['acc_se']:.3f}")

    # 3. A rule variant: the shipped rule's sizes with tanh units, a random theta (SPEC 9 init) ...
    config = refimpl.preset("small").replace(activation="tanh")
    theta = refimpl.init_theta(config, np.random.default_rng(1))
    report = refimpl.evaluate_rule((theta, config), [mine], **settings)
    for row in report["datasets"]["blobs"]["summary"]:
        print(f"tanh variant  {row['method']:>8}: accuracy {row['acc']:.3f} ± {row['acc_se']:.3f}")

    # ... meta-trained on your data: the trainer's tiny preset, its rule made tanh, tasks from "blobs".
    register_dataset("blobs", mine, replace=True)
    tiny = train_preset("tiny")
    tc = tiny.replace(name="tiny-tanh-blobs", datasets=("blobs",), n_way=(2, 3),
                      model=tiny.model.replace(activation="tanh"))
    status = run(out / "variant_run", tc, n_steps=args.steps, restart=(out / "variant_run" / "train_config.json").exists())
    theta, config = refimpl.load(out / "variant_run" / "theta.npz")
    print(f"meta-trained the variant for {args.steps} meta-steps (status {status}); theta in "
          f"{out / 'variant_run' / 'theta.npz'} ({config.activation} units)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
