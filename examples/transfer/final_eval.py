"""The shipped rule's one evaluation: glyphs_rotation_final (the final held-out font families, 10-way 10-shot,
support and query from different fonts), held-out digits, moons and Fashion-MNIST 14x14 at 10-shot, 10 seeds, at 0
and the recommended inner steps, against the random-theta control and every baseline.

    python examples/transfer/final_eval.py RULE OUT_DIR [CACHED_BASELINES.json ...] [--arch rule|paper]
        [--datasets a,b] [--long 3000] [--seeds 10]

The same computation as ``refimpl eval RULE --datasets ... --seeds 10`` (refimpl.evaluation.benchmark), except
that the theta-independent VAE and supervised baselines, the slow ones, may be taken from earlier runs of
``benchmark`` on the same seeds, tasks and labeled trials (given as JSON files of benchmark results); the
pairing is checked (phi_0's accuracy must agree to 1e-12 on every seed). A baseline cached for fewer seeds
is reported on those seeds only (its row's n says how many).
"""
import argparse
import json

from refimpl.data import get_dataset
from refimpl.evaluation.benchmark import VAE_DEFAULTS, benchmark, same_trials, summarize
from refimpl.evaluation.reporting import format_report, write_report
from refimpl.evaluation.suite import ARCHS, random_theta_of
from refimpl.pretrained import load_rule


def check_same_trials(a, b, where):
    """Two per-seed records are on the same task and labeled trials (refimpl.evaluation.benchmark.same_trials)."""
    assert same_trials(a, b), f"{where}: not on the same trials"


DATASETS = (("glyphs_rotation_final", {"n_way": 10, "n_trials": 5, "baselines": ("raw", "ink", "pca")}),
            ("digits", {}), ("moons", {}), ("fashion_mnist14", {}))
p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("rule")
p.add_argument("out_dir")
p.add_argument("cached", nargs="*", help="JSON files of benchmark results holding the slow baselines")
p.add_argument("--arch", choices=tuple(ARCHS), default="rule")
p.add_argument("--datasets", default=",".join(n for n, _ in DATASETS), help="a comma-separated subset")
p.add_argument("--long", type=int, default=None, metavar="S",
               help="also score the rule (and random theta) after S inner steps on every dataset but the glyphs")
p.add_argument("--seeds", type=int, default=10)
p.add_argument("--steps", type=int, default=None,
               help="the rule's inner steps (default: the shipped rule's recommended_inner_steps)")
p.add_argument("--no-random", action="store_true",
               help="leave out the random-theta rows (e.g. a --long check of the rule alone, beside a full report "
                    "that has them)")
p.add_argument("--vae-cached-only", action="store_true",
               help="no VAE fit here: the VAE row only for the datasets whose cached results have one")
p.add_argument("--supervised-on", default=None, metavar="A,B",
               help="compute the supervised baseline only on these datasets (default: all; cached rows are kept)")
args = p.parse_args()
rule, out_dir, cached_files, arch = args.rule, args.out_dir, args.cached, args.arch
theta, config, info = load_rule(rule)
hidden, top = ARCHS[arch] if ARCHS[arch] is not None else (None, None)
random_theta = None if args.no_random else random_theta_of(config)
if args.steps is not None:                     # a snapshot that is not (yet) a shipped rule
    info = {**info, "recommended_inner_steps": args.steps}
steps = (0, info["recommended_inner_steps"])
cached = {}
for path in cached_files:
    data = json.load(open(path))
    data = data.get("datasets", data)           # a report.json of this script holds its results under "datasets"
    for res in ([data] if "per_seed" in data else [v for v in data.values() if isinstance(v, dict) and "per_seed" in v]):
        if res["dataset"] not in cached:
            cached[res["dataset"]] = res
            continue
        # a second file for the same dataset adds the methods the first lacks (e.g. a VAE file and a report)
        have = cached[res["dataset"]]
        by_seed = {r["seed"]: r for r in have["per_seed"]}
        for rec in res["per_seed"]:
            old = by_seed.get(rec["seed"])
            if old is None:
                continue
            check_same_trials(old, rec, path)
            for m in ("vae", "supervised"):
                if m in rec["acc"] and m not in old["acc"]:
                    old["acc"][m], old["diag"][m] = rec["acc"][m], rec["diag"][m]
        have["budgets"] = {**res.get("budgets", {}), **have.get("budgets", {})}
datasets = {}
chosen = args.datasets.split(",")
for name, kw in ((n, dict(k)) for n, k in DATASETS if n in chosen):
    slow = tuple(m for m in ("vae", "supervised") if name in cached
                 and any(m in r["acc"] for r in cached[name]["per_seed"]))
    baselines = kw.pop("baselines", ("raw", "ink", "pca", "vae", "supervised"))
    long = () if args.long is None or name.startswith("glyphs") else (args.long,)
    if args.vae_cached_only:
        baselines = tuple(b for b in baselines if b != "vae")
    if args.supervised_on is not None and name not in args.supervised_on.split(","):
        baselines = tuple(b for b in baselines if b != "supervised")
    res = benchmark(theta, config, get_dataset(name), seeds=range(args.seeds), k_shot=10, k_query=10,
                    inner_steps=steps + long, baselines=tuple(b for b in baselines if b not in slow),
                    random_theta=random_theta, hidden=hidden, top=top, **{"n_trials": 10, **kw})
    if slow:
        by_seed = {b["seed"]: b for b in cached[name]["per_seed"]}
        for rec in res["per_seed"]:
            b = by_seed.get(rec["seed"])
            if b is None:            # this seed's slow baselines were not computed in time: their n is smaller
                continue
            check_same_trials(b, rec, "cached baselines")
            for m in slow:
                if m in b["acc"]:        # a seed the cached file lacks this method for: its n is smaller
                    rec["acc"][m], rec["diag"][m] = b["acc"][m], b["diag"][m]
        for m in slow:              # the budgets the cached rows were computed with, e.g. the VAE's latent
            res.setdefault("budgets", {})[m] = cached[name]["budgets"][m]
        if "vae" in slow:
            want = min(VAE_DEFAULTS["latent"], res["layer_sizes"][-1])
            assert res["budgets"]["vae"]["latent"] == want, f"cached VAE latent is not min(32, N^L) = {want}"
        res["summary"] = summarize(res["per_seed"])
        res["cached_baselines"] = list(slow)
    datasets[name] = res
report = {"rule": rule, "config": config.to_dict(), "info": info, "datasets": datasets,
          "notes": [f"rule {rule}: meta-step {info.get('theta_snapshot')}, recommended inner steps "
                    f"{info['recommended_inner_steps']} (chosen on glyphs in held-out fonts)",
                    f"{args.seeds} seeds (0-{args.seeds - 1}) per dataset; glyphs (final font families, support and query from different "
                    "fonts): 10-way 10-shot, 5 trials; others: all classes, 10-shot, 10 trials x 10 queries/class",
                    f"base net: {arch}; budgets per dataset in report.json (datasets.<name>.budgets: the VAE's "
                    "sizes, early stopping and cap, the supervised steps and lr)",
                    "random@s: a random theta (SPEC 9 init_theta of the rule's config) from the same phi_0"
                    if random_theta is not None else "no random-theta rows (--no-random): see the full report",
                    "± is one standard error over seeds; differences to phi_0 (rule@0) are paired per seed"],
          "settings": {"k_shot": 10, "inner_steps": list(steps), "long_inner_steps": args.long, "seeds": args.seeds,
                       "arch": arch}}
write_report(report, out_dir)
print(format_report(report))
