"""Compare a saved update rule with a random rule, random features and raw pixels (few-shot readout).

    .venv/bin/python examples/evaluate_rule.py runs/demo/theta.npz
    .venv/bin/python examples/evaluate_rule.py runs/demo/theta.npz --dataset moons --k-shot 5 \\
        --inner-steps 500 --seeds 3 --curve-every 50 --out runs/demo/moons
    .venv/bin/python examples/evaluate_rule.py --random mid      # no file: a random theta of a preset

The theta file is a theta-only file (save_params(..., kind="theta"), e.g.
RUN_DIR/theta.npz of refimpl train); its embedded config gives the rule's
sizes. With --out DIR the table goes to DIR/comparison.{json,md} and the bar
chart (and, with --curve-every, the accuracy-vs-steps curve) to DIR/*.png.
"""
import argparse
import os

import numpy as np

from refimpl.cli import OneLineParser
from refimpl.config import PRESETS, preset
from refimpl.data import list_datasets
from refimpl.evaluate import compare, format_table, write_comparison
from refimpl.params import init_theta, load_params
from refimpl.train import directory_arg, nonneg_int, positive_int
from refimpl.train.trainer import check_run_dir

parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("theta", nargs="?", help="theta-only .npz file")
parser.add_argument("--random", metavar="PRESET", choices=sorted(PRESETS),
                    help=f"use init_theta of this model preset instead ({', '.join(sorted(PRESETS))})")
parser.add_argument("--dataset", default="digits", choices=list_datasets(),
                    help="dataset of the few-shot tasks (default digits)")
parser.add_argument("--k-shot", type=positive_int, default=10, help="labeled examples per class (default 10)")
parser.add_argument("--inner-steps", type=nonneg_int, default=300, help="rule steps before the readout (default 300)")
parser.add_argument("--seeds", type=positive_int, default=5, help="number of seeds (tasks), 0..n-1 (default 5)")
parser.add_argument("--trials", type=positive_int, default=10, help="labeled draws per seed (default 10)")
parser.add_argument("--hidden", type=positive_int, nargs="+", default=None,
                    help="base-model widths after the input (default: the rule config's)")
parser.add_argument("--curve-every", type=positive_int, default=None,
                    help="also record the accuracy every this many inner steps")
parser.add_argument("--out", type=directory_arg, default=None, help="directory for the JSON, Markdown and plots")
args = parser.parse_args()

if (args.theta is None) == (args.random is None):
    parser.error("give a theta file or --random PRESET (one of them)")
if args.theta is not None:
    if not os.path.isfile(args.theta):
        parser.error(f"theta file {args.theta} does not exist")
    try:
        theta, config = load_params(args.theta, kind="theta")
    except (ValueError, OSError) as e:
        parser.error(str(e).removeprefix("load_params: "))
    source = args.theta
else:
    config = preset(args.random)
    theta = init_theta(config, np.random.default_rng(12345), np.float32)
    source = f"init_theta({args.random!r}, seed 12345)"
if args.out is not None:
    try:
        check_run_dir(args.out, create=True)
    except ValueError as e:
        parser.error(f"--out: {e}")

layer_sizes = None
if args.hidden:
    from refimpl.data import get_dataset
    layer_sizes = (get_dataset(args.dataset).n_features, *args.hidden)
try:
    rows = compare(theta, config, args.dataset, k_shot=args.k_shot, inner_steps=args.inner_steps,
                   seeds=range(args.seeds), n_trials=args.trials, layer_sizes=layer_sizes,
                   curve_every=args.curve_every, progress=True)
except ValueError as e:   # settings the dataset cannot meet (e.g. more shots than examples)
    parser.error(str(e))
print(f"rule: {source}")
print(format_table(rows))
if args.out:
    paths = write_comparison(rows, args.out, {"theta": source, "config": config.to_dict()})
    for p in paths.values():
        print(f"wrote {p}")
