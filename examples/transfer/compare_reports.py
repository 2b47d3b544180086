"""Two rules evaluated on the same tasks, compared paired: rule A at its steps minus rule B at its steps.

    python examples/transfer/compare_reports.py A/report.json B/report.json [--out OUT.json]

A and B are reports of ``examples/transfer/final_eval.py`` on the same base net and seeds (the same
phi_0 and labeled trials: phi_0's accuracy must agree to 1e-12 on every seed). For every dataset in
both: A's rule at its recommended inner steps minus B's, and each minus every theta-free row (raw,
PCA, VAE, supervised), paired over the evaluation seeds (mean, standard error, seeds where A is ahead).
E.g. the digit-free control against the rule meta-trained with the digits.
"""
import argparse
import json
from pathlib import Path

from refimpl.evaluation.benchmark import paired_difference, same_trials

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("a")
p.add_argument("b")
p.add_argument("--out")
args = p.parse_args()
ra, rb = (json.loads(Path(f).read_text()) for f in (args.a, args.b))
sa, sb = (f"rule@{r['info']['recommended_inner_steps']}" for r in (ra, rb))
out = {"a": {"report": args.a, "rule": ra["rule"], "method": sa},
       "b": {"report": args.b, "rule": rb["rule"], "method": sb}, "datasets": {}}
lines = [f"A = {ra['rule']} ({sa}), B = {rb['rule']} ({sb}); paired over evaluation seeds, ± one standard error", "",
         "| dataset | A | B | A - B | A better | A - raw | A - pca | A - vae | A - supervised |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
for name in ra["datasets"]:
    if name not in rb["datasets"]:
        continue
    pa, pb = ra["datasets"][name]["per_seed"], rb["datasets"][name]["per_seed"]
    by_b = {r["seed"]: r for r in pb}
    merged = []
    for rec in pa:
        other = by_b.get(rec["seed"])
        if other is None:
            continue
        assert same_trials(rec, other, key="rule@0"), f"{name}: not the same phi_0 and trials"
        acc = {k: v for k, v in rec["acc"].items() if not k.startswith(("rule@", "random@"))}
        merged.append({"seed": rec["seed"], "acc": {**acc, "A": rec["acc"][sa], "B": other["acc"][sb]}})
    rows = {"A - B": paired_difference(merged, "A", "B")}
    for base in ("raw", "pca", "vae", "supervised"):
        if any(base in r["acc"] for r in merged):        # paired over the seeds that have it (its n)
            rows[f"A - {base}"] = paired_difference(merged, "A", base)
    rows["A"] = sum(r["acc"]["A"] for r in merged) / len(merged)
    rows["B"] = sum(r["acc"]["B"] for r in merged) / len(merged)
    out["datasets"][name] = rows

    def cell(key, rows=rows):
        d = rows.get(key)
        return "" if d is None else f"{d['delta']:+.3f} ± {d['delta_se']:.3f}"
    lines.append(f"| {name} | {rows['A']:.3f} | {rows['B']:.3f} | {cell('A - B')} | "
                 f"{rows['A - B']['better']}/{rows['A - B']['n']} | {cell('A - raw')} | {cell('A - pca')} | "
                 f"{cell('A - vae')} | {cell('A - supervised')} |")
out["table"] = "\n".join(lines)
print(out["table"])
if args.out:
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
