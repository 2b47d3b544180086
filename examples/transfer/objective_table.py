"""The J table of docs/transfer.md: the SPEC 6 objective of random features phi_0, a constructed collapsed phi
(every unit +- a monotone function of the ink) and the one-feature ink solution, on the same labeled pairs.

    python examples/transfer/objective_table.py shifted         # glyphs shifted +-2 px and rotated (dataset glyphs)
    python examples/transfer/objective_table.py rotation        # rotated +-30 deg, not shifted (glyphs_rotation)
    python examples/transfer/objective_table.py classes         # shifted glyphs, class targets only

Net [196, 64, 64, 16], ridge 0.1 (and 1.0 for `shifted`), 30 tasks, seed 1; test split = fonts held out of
meta-training, train split = the meta-training fonts. phi_0 - collapsed < 0 means random features win on J.
"""
import sys

import numpy as np

from refimpl.data import get_dataset
from refimpl.evaluation.diagnostics import objective_comparison

mode = sys.argv[1] if len(sys.argv) > 1 else "rotation"
if mode not in ("shifted", "rotation", "classes"):
    sys.exit(f"objective_table.py: unknown mode {mode!r} (shifted, rotation, classes)")
ds = get_dataset("glyphs", max_shift=0.0) if mode == "rotation" else get_dataset("glyphs")
grid = {"shifted": [(5, 4), (10, 4), (5, 10), (10, 10), (15, 10), (20, 10), (30, 10)],
        "rotation": [(5, 4), (10, 10), (15, 10), (20, 10), (25, 10)],
        "classes": [(5, 4), (10, 10), (15, 10), (20, 10), (25, 10)]}[mode]
ridges = (0.1, 1.0) if mode == "shifted" else (0.1,)


def se(v):
    return v.std(ddof=1) / np.sqrt(v.size)


print("| fonts | ridge | way x shot | J phi_0 | J collapsed | J ink | phi_0 - collapsed | phi_0 - ink | acc phi_0/coll/ink |")
print("|---|---|---|---|---|---|---|---|---|")
for split in ("test", "train"):
    for ridge in ridges:
        for n_way, k in grid:
            r = objective_comparison(ds, (196, 64, 64, 16), n_way, k, n_tasks=30, ridge=ridge, split=split, seed=1,
                                     classes_only=(mode == "classes"))
            P, C, I = (np.array(r[m]["J_per_task"]) for m in ("phi_0", "collapsed", "ink"))
            print(f"| {'held-out' if split == 'test' else 'training'} | {ridge} | {n_way} x {k} | {P.mean():.3f} "
                  f"| {C.mean():.3f} | {I.mean():.3f} | {np.mean(P - C):+.3f} ± {se(P - C):.3f} "
                  f"| {np.mean(P - I):+.3f} ± {se(P - I):.3f} "
                  f"| {r['phi_0']['acc']:.2f}/{r['collapsed']['acc']:.2f}/{r['ink']['acc']:.2f} |", flush=True)
