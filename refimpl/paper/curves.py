"""Accuracy as the rule trains: over inner steps with every baseline (Fig. 5), per activation (Fig. 8),
per number of shots.

Each experiment runs :func:`refimpl.evaluation.benchmark.benchmark` for the
rule and for its random-theta control on the same seeds (same phi_0, same
input permutation, same labeled trials), so every difference in the tables
is paired per seed.
"""
from __future__ import annotations

from refimpl.paper.common import (
    Progress,
    compare,
    errorbar,
    finish_report,
    fmt,
    header,
    mean_se,
    new_figure,
    per_seed_acc,
    reporting_steps,
    rule_and_control,
    run_benchmark,
    step_axis,
    step_table,
    write_outputs,
)

# ---------------------------------------------------------------------------------
# inner-steps
# ---------------------------------------------------------------------------------
INNER_STEPS_BUDGET = ("5 min of CPU on one core: 3 seeds x 3 trials; the rule on digits to 1000 inner steps, "
                      "moons to 300, Fashion-MNIST 14x14 and 28x28 to 100, the control to at most 100; VAE 200 Adam "
                      "steps, supervised 50 Adam steps per trial (3000 steps: not run, budget)")
INNER_STEPS_FULL = {
    "datasets": {"digits": (0, 1, 3, 10, 30, 100, 300, 1000),
                 "moons": (0, 1, 3, 10, 30, 100, 300),
                 "fashion_mnist14": (0, 1, 3, 10, 30, 100),
                 "fashion_mnist28": (0, 1, 3, 10, 30, 100)},
    "seeds": 3, "n_trials": 3, "k_shot": 10, "k_query": 10, "control_max_steps": 100,
    "baselines": ("raw", "ink", "pca", "vae", "supervised"), "vae_steps": 200, "supervised_steps": 50,
}
INNER_STEPS_QUICK = {
    "datasets": {"digits": (0, 1, 3), "moons": (0, 2)},
    "seeds": 2, "n_trials": 2, "k_shot": 5, "k_query": 5, "control_max_steps": 1,
    "baselines": ("raw", "ink", "pca", "vae", "supervised"), "vae_steps": 3, "supervised_steps": 3,
}


def _baseline_rows(res_rule, baselines, at: int) -> list[dict]:
    phi0 = per_seed_acc(res_rule, "rule@0")
    rule_at = per_seed_acc(res_rule, f"rule@{at}")
    rows = []
    for b in baselines:
        acc = per_seed_acc(res_rule, b)
        rank = {r["seed"]: r["diag"][b]["effective_rank"] for r in res_rule["per_seed"] if b in r["diag"]}
        rows.append({"method": b, "acc": mean_se(list(acc.values())), "vs_phi_0": compare(acc, phi0),
                     "rule_vs_this": compare(rule_at, acc), "rank": mean_se(list(rank.values()))})
    return rows


def inner_steps(rule="small-glyphs-rotation", out_dir=None, *, quick: bool = False, progress: bool = True,
                settings=None) -> dict:
    """Few-shot accuracy of the rule, its control and phi_0 from 0 to 3000 inner steps on digits, moons
    and Fashion-MNIST 14x14 and 28x28, against raw, ink, PCA, VAE and supervised; effective rank at
    every checkpoint. Returns the report (written to ``out_dir`` when given)."""
    from refimpl.data import get_dataset

    s = dict(settings or (INNER_STEPS_QUICK if quick else INNER_STEPS_FULL))
    log = Progress("inner-steps", progress)
    rule, control = rule_and_control(rule)
    at = reporting_steps(rule)
    datasets = {}
    for name, steps in s["datasets"].items():
        ds = get_dataset(name)
        log(f"{name}: rule and control, inner steps {list(steps)}, {s['seeds']} seeds")
        capped = tuple(t for t in steps if t <= s["control_max_steps"])
        res = run_benchmark((rule, control), ds, seeds=range(s["seeds"]),
                            inner_steps={rule.name: steps, control.name: capped}, baselines=s["baselines"], k_shot=s["k_shot"], k_query=s["k_query"],
                            n_trials=s["n_trials"], vae_steps=s["vae_steps"],
                            supervised_steps=s["supervised_steps"])
        at_here = at if at in steps else max(t for t in steps if t <= max(at, min(steps)))
        datasets[name] = {"steps": list(steps), "rows": step_table(res, rule, control, steps),
                          "reported_at": at_here,
                          "baselines": _baseline_rows(res[rule.name], s["baselines"], at_here),
                          "layer_sizes": res[rule.name]["layer_sizes"], "n_classes": res[rule.name]["n_classes"]}
    return finish_report("inner-steps", "few-shot accuracy over inner training, with baselines", rule, control, quick,
                         INNER_STEPS_BUDGET, log, out_dir, inner_steps_markdown, inner_steps_figure,
                         **{"settings": {**{k: v for k, v in s.items() if k != "datasets"}, "reporting_steps": at},
              "datasets": datasets})


def combine_inner_steps(parts, out_dir=None) -> dict:
    """One inner-steps report from reports of the same rule and settings on different datasets (the
    full set split over processes); seconds add up. Written to ``out_dir`` when given."""
    parts = list(parts)
    first = parts[0]
    for p in parts[1:]:
        same = {k: v for k, v in p["settings"].items()} == first["settings"]
        if p["rule"] != first["rule"] or not same or set(p["datasets"]) & set(first["datasets"]):
            raise ValueError("combine_inner_steps: the parts must share rule and settings, with different datasets")
    report = {**first, "datasets": {k: v for p in parts for k, v in p["datasets"].items()},
              "seconds": round(sum(p["seconds"] for p in parts), 1),
              "cpu_seconds": round(sum(p["cpu_seconds"] for p in parts), 1), "processes": len(parts)}
    report.pop("paths", None)
    if out_dir is not None:
        report["paths"] = write_outputs(report, inner_steps_markdown(report), inner_steps_figure(report), out_dir)
    return report


def inner_steps_markdown(report) -> str:
    lines = header(report)
    for name, d in report["datasets"].items():
        lines += [f"## {name} ({d['n_classes']}-way, base model {d['layer_sizes']})", "",
                  "| inner steps | phi_0 | rule | rule vs phi_0 | control | control vs phi_0 | rule vs control "
                  "| rule eff. rank | control eff. rank | diverged (rule/control) |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in d["rows"]:
            if r["control_run"]:
                ctrl = (f"{fmt(r['control'])} | {fmt(r['control_vs_phi_0'], signed=True)} "
                        f"| {fmt(r['rule_vs_control'], signed=True)}")
                crank, cdiv = fmt(r["control_rank"], 1), r["control_diverged"]
            else:
                ctrl, crank, cdiv = "not run (budget) | | ", "", "-"
            lines.append(f"| {r['step']} | {fmt(r['phi_0'])} | {fmt(r['rule'])} | {fmt(r['rule_vs_phi_0'], signed=True)} "
                         f"| {ctrl} | {fmt(r['rule_rank'], 1)} | {crank} | {r['rule_diverged']}/{cdiv} |")
        lines += ["", f"Baselines (the rule at {d['reported_at']} inner steps against each, paired):", "",
                  "| method | accuracy | vs phi_0 | rule minus this | eff. rank |", "|---|---:|---:|---:|---:|"]
        for b in d["baselines"]:
            lines.append(f"| {b['method']} | {fmt(b['acc'])} | {fmt(b['vs_phi_0'], signed=True)} "
                         f"| {fmt(b['rule_vs_this'], signed=True)} | {fmt(b['rank'], 1)} |")
        lines.append("")
    return "\n".join(lines)


def inner_steps_figure(report):
    names = list(report["datasets"])
    fig, axes = new_figure(4.2 * len(names), 6.4, 2, len(names))
    for j, name in enumerate(names):
        d = report["datasets"][name]
        ax, axr = axes[0, j], axes[1, j]
        steps = [r["step"] for r in d["rows"]]
        errorbar(ax, steps, [r["rule"] for r in d["rows"]], "rule", color="C0")
        ctrl = [r for r in d["rows"] if r["control_run"]]
        errorbar(ax, [r["step"] for r in ctrl], [r["control"] for r in ctrl], "random-theta control", color="C3")
        phi0 = d["rows"][0]["phi_0"]
        ax.axhline(phi0["mean"], color="k", lw=1, ls=":", label="phi_0")
        for k, b in enumerate(d["baselines"]):
            ax.axhline(b["acc"]["mean"], color=f"C{k + 4}", lw=1, ls="--", label=b["method"])
        step_axis(ax, steps)
        ax.set_title(f"{name} ({d['n_classes']}-way)", fontsize=9)
        ax.set_ylabel("few-shot accuracy")
        errorbar(axr, steps, [r["rule_rank"] for r in d["rows"]], "rule", color="C0")
        errorbar(axr, [r["step"] for r in ctrl], [r["control_rank"] for r in ctrl], "control", color="C3")
        step_axis(axr, steps)
        axr.set_ylabel("effective rank of x^L")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8)
    fig.suptitle(f"{report['rule']}: error bars 1 s.e. over {report['settings']['seeds']} seeds; "
                 "baselines dashed", fontsize=9)
    return fig


# ---------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------
ACTIVATIONS_BUDGET = ("0.5 min of CPU on one core: digits, 8 activations x (rule, control) x 3 seeds x 3 trials, "
                      "to 30 inner steps")
ACTIVATIONS_FULL = {"dataset": "digits", "steps": (0, 3, 10, 30), "seeds": 3, "n_trials": 3,
                    "k_shot": 10, "k_query": 10, "activations": None}
ACTIVATIONS_QUICK = {"dataset": "digits", "steps": (0, 2), "seeds": 2, "n_trials": 2, "k_shot": 5, "k_query": 5,
                     "activations": ("relu", "step")}


def activations(rule="small-glyphs-rotation", out_dir=None, *, quick: bool = False, progress: bool = True,
                settings=None) -> dict:
    """The rule (meta-trained on ReLU) on base models with each SPEC 2 activation, against phi_0 of
    the same activation and the control, on digits."""
    from refimpl.data import get_dataset
    from refimpl.ops.activations import ACTIVATIONS

    s = dict(settings or (ACTIVATIONS_QUICK if quick else ACTIVATIONS_FULL))
    s["activations"] = tuple(s["activations"] or ACTIVATIONS)
    log = Progress("activations", progress)
    rule, control = rule_and_control(rule)
    ds = get_dataset(s["dataset"])
    out = {}
    for act in s["activations"]:
        log(f"{act}: rule and control, inner steps {list(s['steps'])}")
        res = run_benchmark((rule, control), ds, seeds=range(s["seeds"]), inner_steps=s["steps"],
                            config=rule.config.replace(activation=act), k_shot=s["k_shot"],
                            k_query=s["k_query"], n_trials=s["n_trials"])
        out[act] = {"rows": step_table(res, rule, control, s["steps"]),
                    "layer_sizes": res[rule.name]["layer_sizes"]}
    return finish_report("activations", f"the rule on base models with other activations ({s['dataset']})", rule, control, quick,
                         ACTIVATIONS_BUDGET, log, out_dir, activations_markdown, activations_figure,
                         **{"settings": {**s, "reporting_steps": reporting_steps(rule)}, "activations": out})


def activations_markdown(report) -> str:
    lines = header(report)
    lines += ["| activation | inner steps | phi_0 | rule | rule vs phi_0 | control | control vs phi_0 "
              "| rule eff. rank |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for act, d in report["activations"].items():
        for r in d["rows"]:
            lines.append(f"| {act} | {r['step']} | {fmt(r['phi_0'])} | {fmt(r['rule'])} "
                         f"| {fmt(r['rule_vs_phi_0'], signed=True)} | {fmt(r['control'])} "
                         f"| {fmt(r['control_vs_phi_0'], signed=True)} | {fmt(r['rule_rank'], 1)} |")
    return "\n".join(lines) + "\n"


def activations_figure(report):
    acts = list(report["activations"])
    cols = min(4, len(acts))
    rows = -(-len(acts) // cols)
    fig, axes = new_figure(3.2 * cols, 2.8 * rows + 0.6, rows, cols, sharey=True)
    for i, act in enumerate(acts):
        ax = axes[i // cols, i % cols]
        d = report["activations"][act]["rows"]
        steps = [r["step"] for r in d]
        errorbar(ax, steps, [r["rule"] for r in d], "rule", color="C0")
        errorbar(ax, steps, [r["control"] for r in d], "random-theta control", color="C3")
        ax.axhline(d[0]["phi_0"]["mean"], color="k", ls=":", lw=1, label="phi_0 (same activation)")
        step_axis(ax, steps)
        ax.set_title(act, fontsize=9)
        if i % cols == 0:
            ax.set_ylabel("few-shot accuracy")
    for j in range(len(acts), rows * cols):
        axes[j // cols, j % cols].set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle(f"{report['rule']} on {report['settings']['dataset']}; error bars 1 s.e. over "
                 f"{report['settings']['seeds']} seeds", fontsize=9)
    return fig


# ---------------------------------------------------------------------------------
# shots
# ---------------------------------------------------------------------------------
SHOTS_BUDGET = ("0.3 min of CPU on one core: digits, 1/5/10/20 shots x (rule, control) x 3 seeds x 5 trials, at "
                "30 inner steps")
SHOTS_FULL = {"dataset": "digits", "shots": (1, 5, 10, 20), "seeds": 3, "n_trials": 5, "k_query": 10,
              "baselines": ("raw", "pca"), "steps": 30}
SHOTS_QUICK = {"dataset": "digits", "shots": (1, 5), "seeds": 2, "n_trials": 2, "k_query": 5,
               "baselines": ("raw",), "steps": 2}


def shots(rule="small-glyphs-rotation", out_dir=None, *, quick: bool = False, progress: bool = True,
          settings=None) -> dict:
    """Few-shot accuracy with 1, 5, 10 and 20 labeled examples per class at the rule's reporting step."""
    from refimpl.data import get_dataset

    s = dict(settings or (SHOTS_QUICK if quick else SHOTS_FULL))
    log = Progress("shots", progress)
    rule, control = rule_and_control(rule)
    at = int(s.get("steps") or reporting_steps(rule))
    s["steps"] = at
    ds = get_dataset(s["dataset"])
    out = []
    for k in s["shots"]:
        log(f"{k} shots: rule and control at {at} inner steps")
        res = run_benchmark((rule, control), ds, seeds=range(s["seeds"]), inner_steps=(0, at),
                            baselines=s["baselines"], k_shot=k, k_query=s["k_query"], n_trials=s["n_trials"])
        row = step_table(res, rule, control, (at,))[0]
        row["k_shot"] = int(k)
        row["baselines"] = {b: mean_se(list(per_seed_acc(res[rule.name], b).values())) for b in s["baselines"]}
        out.append(row)
    return finish_report("shots", f"labeled examples per class ({s['dataset']})", rule, control, quick,
                         SHOTS_BUDGET, log, out_dir, shots_markdown, shots_figure,
                         **{"settings": {**s, "k_shot": "1, 5, 10, 20" if not quick else list(s["shots"])}, "rows": out})


def shots_markdown(report) -> str:
    lines = header(report)
    bls = list(report["rows"][0]["baselines"])
    lines += [f"Rule and control at {report['settings']['steps']} inner steps.", "",
              "| shots | phi_0 | rule | rule vs phi_0 | control | control vs phi_0 | rule vs control | "
              + " | ".join(bls) + " |", "|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(bls)]
    for r in report["rows"]:
        lines.append(f"| {r['k_shot']} | {fmt(r['phi_0'])} | {fmt(r['rule'])} | {fmt(r['rule_vs_phi_0'], signed=True)} "
                     f"| {fmt(r['control'])} | {fmt(r['control_vs_phi_0'], signed=True)} "
                     f"| {fmt(r['rule_vs_control'], signed=True)} | "
                     + " | ".join(fmt(r["baselines"][b]) for b in bls) + " |")
    return "\n".join(lines) + "\n"


def shots_figure(report):
    fig, axes = new_figure(7.5, 3.8)
    ax = axes[0, 0]
    ks = [r["k_shot"] for r in report["rows"]]
    errorbar(ax, ks, [r["rule"] for r in report["rows"]], f"rule @ {report['settings']['steps']} steps", color="C0")
    errorbar(ax, ks, [r["control"] for r in report["rows"]], "random-theta control", color="C3")
    errorbar(ax, ks, [r["phi_0"] for r in report["rows"]], "phi_0", color="k", ls=":")
    for i, b in enumerate(report["rows"][0]["baselines"]):
        errorbar(ax, ks, [r["baselines"][b] for r in report["rows"]], b, color=f"C{i + 4}", ls="--")
    ax.set_xticks(ks)
    ax.set_xlabel("labeled examples per class")
    ax.set_ylabel("few-shot accuracy")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", fontsize=7)
    ax.set_title(f"{report['settings']['dataset']}: error bars 1 s.e. over {report['settings']['seeds']} seeds",
                 fontsize=9)
    return fig
