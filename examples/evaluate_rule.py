"""Compare a saved update rule with a random rule, random features and raw pixels (few-shot readout).

    .venv/bin/python examples/evaluate_rule.py runs/demo/theta.npz
    .venv/bin/python examples/evaluate_rule.py runs/demo/theta.npz --dataset moons --k-shot 5 \\
        --inner-steps 500 --seeds 3 --curve-every 50 --out runs/demo/moons
    .venv/bin/python examples/evaluate_rule.py --random mid      # no file: a random theta of a preset

The theta file is a theta-only file (``save_params(..., kind="theta")``, e.g.
``RUN_DIR/theta.npz`` of ``refimpl train``); its embedded config gives the
rule's sizes. With ``--out DIR`` the table goes to DIR/comparison.{json,md}
and the bar chart (and, with ``--curve-every``, the accuracy-vs-steps curve)
to DIR/*.png.
"""
import argparse

import numpy as np

from refimpl.config import preset
from refimpl.evaluate import compare, format_table, write_comparison
from refimpl.params import init_theta, load_params

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("theta", nargs="?", help="theta-only .npz file")
parser.add_argument("--random", metavar="PRESET", help="use init_theta of this model preset instead")
parser.add_argument("--dataset", default="digits")
parser.add_argument("--k-shot", type=int, default=10)
parser.add_argument("--inner-steps", type=int, default=300)
parser.add_argument("--seeds", type=int, default=5, help="number of seeds (tasks), 0..n-1")
parser.add_argument("--trials", type=int, default=10, help="labeled draws per seed")
parser.add_argument("--hidden", type=int, nargs="*", default=None,
                    help="base-model widths after the input (default: the rule config's)")
parser.add_argument("--curve-every", type=int, default=None)
parser.add_argument("--out", default=None, help="directory for the JSON, Markdown and plots")
args = parser.parse_args()

if (args.theta is None) == (args.random is None):
    parser.error("give a theta file or --random PRESET (one of them)")
if args.theta is not None:
    theta, config = load_params(args.theta, kind="theta")
    source = args.theta
else:
    config = preset(args.random)
    theta = init_theta(config, np.random.default_rng(12345), np.float32)
    source = f"init_theta({args.random!r}, seed 12345)"

layer_sizes = None
if args.hidden:
    from refimpl.data import get_dataset
    layer_sizes = (get_dataset(args.dataset).n_features, *args.hidden)
rows = compare(theta, config, args.dataset, k_shot=args.k_shot, inner_steps=args.inner_steps,
               seeds=range(args.seeds), n_trials=args.trials, layer_sizes=layer_sizes,
               curve_every=args.curve_every, progress=True)
print(f"rule: {source}")
print(format_table(rows))
if args.out:
    paths = write_comparison(rows, args.out, {"theta": source, "config": config.to_dict()})
    for p in paths.values():
        print(f"wrote {p}")
