"""Copy a chosen theta snapshot into the package as a shipped rule, with its card (JSON and Markdown).

    python examples/transfer/ship_rule.py RUN_DIR THETA.npz NAME --steps S --selection SELECT.json \\
        --commit SHA --command "..."

RUN_DIR is the meta-training run (log.jsonl or log.jsonl.gz, train_config.json), committed in the repository
(e.g. experiments/NAME, examples/transfer/collect_run.py); THETA.npz a theta-only snapshot of it; SELECT.json the
glyph selection table (examples/transfer/choose_rule.py), committed too. Writes
refimpl/pretrained/rules/NAME.{npz,json,md}; the card's provenance names the log, probe log and selection
JSON by their paths in the repository (tests/test_provenance.py recomputes the card from them).
"""
import argparse
import json
import shutil
from pathlib import Path

from refimpl.params import load_params
from refimpl.pretrained.card import (
    log_summary,
    meta_seed_markdown,
    meta_seed_summary,
    read_jsonl,
    selection_rows_markdown,
    selection_table,
)

ROOT = Path(__file__).resolve().parents[2]
p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("run_dir")
p.add_argument("theta")
p.add_argument("name")
p.add_argument("--steps", type=int, required=True, help="recommended inner steps")
p.add_argument("--selection", required=True)
p.add_argument("--commit", required=True)
p.add_argument("--command", required=True)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--note", default="", help="appended to the card's chosen_by (e.g. classes left out of selection)")
p.add_argument("--meta-seeds", metavar="SEEDS.json", help="the recipe's meta-training seeds "
               "(examples/transfer/meta_seeds.py), committed: the card states their spread on --meta-seeds-dataset")
p.add_argument("--meta-seeds-dataset", default="digits")
p.add_argument("--title", default="Shipped rule", help="the Markdown card's heading (e.g. 'Control rule')")
args = p.parse_args()

theta, config = load_params(args.theta, kind="theta")          # must be a theta-only file with its config
run_dir = Path(args.run_dir).resolve()
log_path = next(q for q in (run_dir / "log.jsonl", run_dir / "log.jsonl.gz") if q.is_file())
records = read_jsonl(log_path)
suffix = Path(args.theta).stem.split("_")[-1]
meta_step = int(suffix) if suffix.isdigit() else records[-1]["step"]     # theta.npz of the finished run: its last step
summary = log_summary(records, meta_step)
first, last = summary["J_mean_first_50_steps"], summary["J_mean_last_50_steps"]
selection = json.loads(Path(args.selection).read_text())
table = selection_table(selection)
card = {
    "name": args.name,
    "theta_snapshot": f"{Path(args.theta).name} (meta-step {meta_step})",
    "recommended_inner_steps": args.steps,
    "trained_by": {"command": args.command, "seed": args.seed, "commit": args.commit,
                   "train_config": json.loads((Path(args.run_dir) / "train_config.json").read_text())},
    "log_summary": summary,
    "chosen_by": ("glyphs_rotation, the select font families (STIX General; support and query from different "
                  "fonts), 10-way 10-shot, seeds 100-104, 5 trials: "
                  "the (snapshot, inner steps) with the best paired gain over phi_0 among those whose top "
                  "features keep >= half of phi_0's effective rank; no evaluation dataset was used"
                  + (f". {args.note}" if args.note else "")),
    "selection_table": table,
    "provenance": {
        "log": str(log_path.relative_to(ROOT)),
        "probe_log": next((str(q.relative_to(ROOT)) for q in (run_dir / "probe.jsonl", run_dir / "probe.jsonl.gz")
                           if q.is_file()), None),
        "selection": str(Path(args.selection).resolve().relative_to(ROOT)),
    },
}
if args.meta_seeds:
    card["meta_seeds"] = meta_seed_summary(json.loads(Path(args.meta_seeds).read_text()), args.meta_seeds_dataset)
    card["provenance"]["meta_seeds"] = str(Path(args.meta_seeds).resolve().relative_to(ROOT))
out = ROOT / "refimpl" / "pretrained" / "rules"
out.mkdir(parents=True, exist_ok=True)
shutil.copyfile(args.theta, out / f"{args.name}.npz")
(out / f"{args.name}.json").write_text(json.dumps(card, indent=1) + "\n")
md = [f"# {args.title} `{args.name}`", "",
      f"- theta: meta-step {meta_step} of the run below ({card['log_summary']['tasks_drawn']} tasks drawn, "
      f"{card['log_summary']['wall_minutes']} min of logged step wall time, one BLAS thread on a shared 2-core machine); "
      "config embedded in the .npz",
      f"- recommended inner steps: **{args.steps}**",
      f"- reproduce: `{args.command}` (seed {args.seed}) at commit {args.commit}",
      f"- J (mean of the kept tasks): {first:.3f} over the first 50 meta-steps, {last:.3f} over the last 50",
      f"- chosen by: {card['chosen_by']}",
      f"- files behind these numbers: log `{card['provenance']['log']}`, probe log "
      f"`{card['provenance']['probe_log']}`, selection `{card['provenance']['selection']}`"
      + (f", meta-training seeds `{card['provenance']['meta_seeds']}`" if args.meta_seeds else "")]
if args.meta_seeds:
    md.append(meta_seed_markdown(card["meta_seeds"]))
md += ["",
      "| snapshot | inner steps | gain vs phi_0 ± se | eff. rank (phi_0) |", "|---|---:|---:|---:|"]
md += selection_rows_markdown(table)
(out / f"{args.name}.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
