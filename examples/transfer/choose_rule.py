"""Choose the shipped theta and its inner-step count using ONLY glyphs_rotation in the held-out ``select``
font families (STIX General; support and query from different fonts), 10-way 10-shot (selection seeds
100-104, disjoint from the reporting seeds 0-9). Each table also has the random-theta rows (SPEC 9
init_theta of the theta's config) and the raw-input row.
Criterion: the best paired gain over phi_0 among (snapshot, steps) whose effective rank is >= half of phi_0's.
Usage: choose_rule.py OUT.json THETA.npz [THETA.npz ...] [--dataset NAME] [--exclude-classes digits]
[--arch rule|paper] (appends; skips thetas already in OUT.json)
--dataset (default glyphs_rotation): glyphs_rotation_final checks a theta whose meta-training saw the select
families (the first shipped rule was trained on three STIX General fonts) on the final families; a check, never
a choice. --exclude-classes (class names or class sets, comma-separated) leaves those glyph classes out of the
selection tasks too: a control meta-trained without them is also chosen without them. --arch paper runs the
selection tasks on the paper's base net (refimpl.evaluation.suite.ARCHS) instead of the theta's own: the inner
steps for that net, chosen on the same held-out glyphs."""
import json
import os
import sys
import time

from refimpl.data import get_dataset
from refimpl.evaluation.benchmark import benchmark
from refimpl.evaluation.reporting import format_summary
from refimpl.evaluation.suite import ARCHS, random_theta_of
from refimpl.params import load_params

args = sys.argv[1:]
name = "glyphs_rotation"
if "--dataset" in args:
    i = args.index("--dataset")
    name = args[i + 1]
    del args[i:i + 2]
excluded = ()
if "--exclude-classes" in args:
    i = args.index("--exclude-classes")
    excluded = tuple(c for c in args[i + 1].split(",") if c)
    del args[i:i + 2]
arch = "rule"
if "--arch" in args:
    i = args.index("--arch")
    arch = args[i + 1]
    del args[i:i + 2]
    if arch not in ARCHS:
        sys.exit(f"choose_rule.py: unknown --arch {arch!r} (known: {', '.join(ARCHS)})")
hidden, top = ARCHS[arch] if ARCHS[arch] is not None else (None, None)
out = args[0]
done = json.load(open(out)) if os.path.exists(out) else {}
ds = get_dataset(name, exclude_classes=excluded)
for path in args[1:]:
    if path in done:
        continue
    t = time.time()
    theta, config = load_params(path, kind="theta")
    r = benchmark(theta, config, ds, seeds=range(100, 105), n_way=10, k_shot=10, k_query=10, n_trials=5,
                  inner_steps=(25, 50, 100, 200), baselines=("raw", "ink"), random_theta=random_theta_of(config),
                  hidden=hidden, top=top, progress=False)
    done[path] = r["summary"]
    print(f"## {path} [{time.time()-t:.0f}s]\n" + format_summary(r["summary"]), flush=True)
    json.dump(done, open(out + ".tmp", "w"), indent=1)
    os.replace(out + ".tmp", out)
best = None
for path, rows in done.items():
    by = {r["method"]: r for r in rows}
    r0 = by["rule@0"]["effective_rank"]
    for m, r in by.items():
        if m.startswith("rule@") and m != "rule@0" and r["effective_rank"] >= 0.5 * r0:
            if best is None or r["delta"] > best[2]["delta"]:
                best = (path, m, r)
print("CHOSEN:", best[0], best[1], f"delta {best[2]['delta']:+.3f} +- {best[2]['delta_se']:.3f}, rank {best[2]['effective_rank']:.1f}")
