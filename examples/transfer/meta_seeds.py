"""One recipe's meta-training seeds side by side: each seed's chosen theta, evaluated on the same tasks, at its
own recommended inner steps; the mean, the spread between seeds and how many clear a bar.

    python examples/transfer/meta_seeds.py OUT.json "seed 0=A/report.json" "seed 1=B/report.json" ...
        [--datasets digits,moons] [--min-gain 0.20]

Each report is one of ``examples/transfer/final_eval.py`` (same base net and evaluation seeds: phi_0 must
agree, checked per seed). Writes OUT.json (the rows of
``refimpl.evaluation.metaseeds.across_meta_seeds`` per dataset, with each seed's report, rule, snapshot
and inner steps, and per seed the rule minus phi_0, the random theta and each baseline, paired) and the
Markdown tables beside it (OUT with ``.md``).
"""
import argparse
import json
from pathlib import Path

from refimpl.evaluation.benchmark import paired_difference, summarize
from refimpl.evaluation.metaseeds import across_meta_seeds, at_steps, format_meta_seeds
from refimpl.npzio import atomic_write_bytes

OTHERS = ("rule@0", "random", "raw", "pca", "vae", "supervised")

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("out")
p.add_argument("reports", nargs="+", metavar="LABEL=REPORT")
p.add_argument("--datasets", default="digits,moons")
p.add_argument("--min-gain", type=float, default=0.20)
args = p.parse_args()
if not args.out.endswith(".json"):
    p.error(f"OUT must end with .json, not {args.out!r}")
runs = {}
for item in args.reports:
    label, sep, path = item.partition("=")
    if not sep or not label:
        p.error(f"expected LABEL=REPORT.json, got {item!r}")
    report = json.loads(Path(path).read_text())
    snapshot = report["info"].get("theta_snapshot") or Path(report["rule"]).name     # a theta file: its name
    runs[label] = {"report": path, "rule": report["rule"], "snapshot": snapshot,
                   "steps": report["info"]["recommended_inner_steps"], "datasets": report["datasets"]}
out = {"min_gain": args.min_gain, "seeds": {k: {m: v for m, v in r.items() if m != "datasets"}
                                             for k, r in runs.items()}, "datasets": {}}
lines = [f"# {len(runs)} meta-training seeds of one recipe", "",
         "Each seed's theta at its own recommended inner steps (`rule`, `random`: the random theta at those "
         "steps); gains paired with phi_0 over the evaluation seeds; the spread is between meta-training seeds.", ""]
lines += [f"- {k}: {r['rule']}, {r['snapshot']}, {r['steps']} inner steps ({r['report']})" for k, r in runs.items()]
for name in args.datasets.split(","):
    missing = [k for k, r in runs.items() if name not in r["datasets"]]
    if missing:
        p.error(f"dataset {name!r} is not in the reports of {', '.join(missing)}")
    results = {k: at_steps(r["datasets"][name], r["steps"]) for k, r in runs.items()}
    try:
        rows = across_meta_seeds(results, min_gain=args.min_gain)
    except ValueError as e:
        p.error(f"{name}: {e}")
    out["datasets"][name] = rows
    lines += ["", f"## {name}", "", format_meta_seeds(rows, min_gain=args.min_gain), "",
              "Per meta-training seed, the rule minus each row, paired (± one standard error; seeds ahead/paired):", "",
              "| meta-seed | rule | " + " | ".join(f"minus {m}" for m in OTHERS) + " | eff. rank (phi_0's) |",
              "|---|---:|" + "---:|" * (len(OTHERS) + 1)]
    per = out.setdefault("per_seed", {}).setdefault(name, {})
    for k, res in results.items():
        diffs = {m: paired_difference(res["per_seed"], "rule", m) for m in OTHERS
                 if any(m in rec["acc"] for rec in res["per_seed"])}
        by = {r["method"]: r for r in summarize(res["per_seed"])}
        per[k] = {"acc": by["rule"]["acc"], "effective_rank": by["rule"]["effective_rank"],
                  "phi0_effective_rank": by["rule@0"]["effective_rank"], "minus": diffs}
        cells = [f"{diffs[m]['delta']:+.3f} ± {diffs[m]['delta_se']:.3f} ({diffs[m]['better']}/{diffs[m]['n']})"
                 if m in diffs else "" for m in OTHERS]
        lines.append(f"| {k} | {by['rule']['acc']:.3f} | " + " | ".join(cells)
                     + f" | {by['rule']['effective_rank']:.1f} ({by['rule@0']['effective_rank']:.1f}) |")
atomic_write_bytes(args.out, lambda f: f.write((json.dumps(out, indent=1) + "\n").encode()))
atomic_write_bytes(args.out[:-5] + ".md", lambda f: f.write(("\n".join(lines) + "\n").encode()))
print("\n".join(lines))
