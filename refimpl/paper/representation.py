"""What the rule does to the representation: the data manifold (Fig. 6 centre/right, Fig. 10) and the
first-layer receptive fields (Fig. 6 left, App. D).

Per seed, as :func:`refimpl.evaluation.benchmark.benchmark` does: a random
input permutation and phi_0 from ``default_rng([seed, 0])``, the rule's
unlabeled batches from ``default_rng([seed, 3])``, labeled trials from
``default_rng([seed, 2])``; the rule is applied by
:func:`refimpl.evaluation.fewshot.apply_rule` and read out by
:func:`refimpl.evaluation.fewshot.few_shot_accuracy`.

Receptive fields are the columns of ``layer1/W`` with the input permutation
undone (:func:`unpermute_rows`), drawn as images. Two numbers say how
template-like they are: the *template score* (mean over units of the largest
``|corr|`` between the field and a class-mean image minus the mean image,
on the train split) and the *smoothness* (mean correlation of the field
with itself shifted by one pixel, across and down). Noise scores about 0 on
both.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from refimpl.paper.common import Progress, compare, finish_report, fmt, header, mean_se, new_figure, rule_and_control


def _task(dataset, cfg, seed: int):
    from refimpl.params import init_phi

    task_rng = np.random.default_rng([seed, 0])
    task = dataset.permuted(dataset.random_permutation(task_rng))
    return task, init_phi(cfg, task_rng, np.float32)


def _trained(theta, phi0, task, n_steps, cfg, seed):
    from refimpl.evaluation.fewshot import RuleDivergedError, apply_rule

    try:
        phi, _ = apply_rule(theta, phi0, task, n_steps, cfg, np.random.default_rng([seed, 3]))
    except RuleDivergedError:
        return None
    return phi


def _eval_cfg(rule, dataset):
    from refimpl.evaluation.fewshot import eval_config
    return eval_config(rule.config, dataset.n_features)


# ---------------------------------------------------------------------------------
# manifold
# ---------------------------------------------------------------------------------
MANIFOLD_BUDGET = "0.2 min of CPU on one core: moons and digits, 3 seeds, 30 inner steps of the rule and of the control"
MANIFOLD_FULL = {"datasets": ("moons", "digits"), "steps": 30, "seeds": 3, "n_trials": 5, "k_shot": 10,
                 "k_query": 10, "variance_levels": (0.9, 0.99)}
MANIFOLD_QUICK = {"datasets": ("moons", "digits"), "steps": 3, "seeds": 2, "n_trials": 2, "k_shot": 5,
                  "k_query": 5, "variance_levels": (0.9, 0.99)}


def cumulative_variance(F) -> np.ndarray:
    """Cumulative fraction of the variance of ``F [n, F]`` explained by its principal components."""
    from refimpl.evaluation.diagnostics import singular_values

    v = singular_values(F) ** 2
    return np.cumsum(v) / v.sum() if v.sum() > 0 else np.zeros_like(v)


def components_for(cum: np.ndarray, level: float) -> int:
    """Principal components needed to explain ``level`` of the variance."""
    return int(np.searchsorted(cum, level - 1e-12) + 1) if cum.size and cum[-1] > 0 else 0


def top3(F) -> np.ndarray:
    """Projection of ``F`` onto its top 3 principal components, ``[n, 3]`` (zero-padded)."""
    F = np.asarray(F, np.float64)
    Fc = F - F.mean(axis=0)
    _, _, vt = np.linalg.svd(Fc, full_matrices=False)
    P = Fc @ vt[:3].T
    return np.pad(P, ((0, 0), (0, 3 - P.shape[1]))) if P.shape[1] < 3 else P


def manifold(rule="small-glyphs-rotation", out_dir=None, *, quick: bool = False, progress: bool = True,
             settings=None) -> dict:
    """PCA of the top features before (phi_0) and after the rule and the control on two moons and digits."""
    from refimpl.data import get_dataset
    from refimpl.evaluation.fewshot import features, few_shot_accuracy

    s = dict(settings or (MANIFOLD_QUICK if quick else MANIFOLD_FULL))
    log = Progress("manifold", progress)
    rule, control = rule_and_control(rule)
    out = {}
    for name in s["datasets"]:
        ds = get_dataset(name)
        cfg = _eval_cfg(rule, ds)
        log(f"{name}: {s['seeds']} seeds, {s['steps']} inner steps")
        acc = {m: {} for m in ("phi_0", "rule", "control")}
        comps = {m: {lv: {} for lv in s["variance_levels"]} for m in acc}
        cums = {m: [] for m in acc}
        projection = None
        for seed in range(s["seeds"]):
            task, phi0 = _task(ds, cfg, seed)
            phis = {"phi_0": phi0, "rule": _trained(rule.theta, phi0, task, s["steps"], cfg, seed),
                    "control": _trained(control.theta, phi0, task, s["steps"], cfg, seed)}
            x, labels = task.arrays("test")
            for m, phi in phis.items():
                if phi is None:
                    continue
                F = features(phi, x, cfg)
                cum = cumulative_variance(F)
                cums[m].append(cum.tolist())
                for lv in s["variance_levels"]:
                    comps[m][lv][seed] = components_for(cum, lv)
                acc[m][seed] = few_shot_accuracy(phi, task, cfg, np.random.default_rng([seed, 2]),
                                                 k_shot=s["k_shot"], k_query=s["k_query"], n_trials=s["n_trials"])[0]
                if seed == 0:
                    projection = projection or {}
                    keep = np.random.default_rng(0).permutation(len(x))[:400]
                    projection[m] = {"points": np.round(top3(F)[keep], 4).tolist(), "labels": labels[keep].tolist()}
        out[name] = {
            "layer_sizes": list(cfg.layer_sizes), "n_test": int(len(x)),
            "accuracy": {m: mean_se(list(v.values())) for m, v in acc.items()},
            "rule_vs_phi_0": compare(acc["rule"], acc["phi_0"]),
            "control_vs_phi_0": compare(acc["control"], acc["phi_0"]),
            "components": {m: {str(lv): mean_se(list(v.values())) for lv, v in c.items()} for m, c in comps.items()},
            "cumulative_variance": {m: np.mean(v, axis=0).round(5).tolist() if v else [] for m, v in cums.items()},
            "projection_seed_0": projection,
        }
    return finish_report("manifold", "the representation before and after the rule (PCA)", rule, control, quick,
                         MANIFOLD_BUDGET, log, out_dir, manifold_markdown, manifold_figure,
                         **{"settings": s, "datasets": out})


def manifold_markdown(report) -> str:
    lines = header(report)
    levels = [str(lv) for lv in report["settings"]["variance_levels"]]
    lines += [f"Features of the whole test split after {report['settings']['steps']} inner steps.", "",
              "| dataset | features | few-shot accuracy | vs phi_0 | "
              + " | ".join(f"PCs for {float(lv):.0%} of variance" for lv in levels) + " |",
              "|---|---|---:|---:|" + "---:|" * len(levels)]
    for name, d in report["datasets"].items():
        for m in ("phi_0", "rule", "control"):
            vs = "" if m == "phi_0" else fmt(d[f"{m}_vs_phi_0"], signed=True)
            lines.append(f"| {name} | {m} | {fmt(d['accuracy'][m])} | {vs} | "
                         + " | ".join(fmt(d["components"][m][lv], 1) for lv in levels) + " |")
    return "\n".join(lines) + "\n"


def manifold_figure(report):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(report["datasets"])
    fig = Figure(figsize=(13, 3.3 * len(names)), layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(len(names), 3)
    for i, name in enumerate(names):
        proj = report["datasets"][name]["projection_seed_0"] or {}
        for j, m in enumerate(("phi_0", "rule")):
            ax = fig.add_subplot(gs[i, j], projection="3d")
            if m in proj:
                p, lab = np.asarray(proj[m]["points"]), np.asarray(proj[m]["labels"])
                ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=lab, cmap="tab10", s=4, vmin=0, vmax=9)
            ax.set_title(f"{name}: {'before (phi_0)' if m == 'phi_0' else 'after the rule'}, top-3 PCs, seed 0",
                         fontsize=8)
            ax.tick_params(labelsize=5)
    ax = fig.add_subplot(gs[:, 2])
    styles = {"phi_0": ":", "rule": "-", "control": "--"}
    for k, name in enumerate(names):
        for m, ls in styles.items():
            cum = report["datasets"][name]["cumulative_variance"][m]
            if cum:
                ax.plot(range(1, len(cum) + 1), cum, ls=ls, color=f"C{k}", marker="o", markersize=2,
                        label=f"{name}, {m}")
    ax.set_xlabel("principal components")
    ax.set_ylabel("cumulative variance explained")
    ax.set_title(f"mean over {report['settings']['seeds']} seeds", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{report['rule']}: {report['settings']['steps']} inner steps; colours = classes", fontsize=9)
    return fig


# ---------------------------------------------------------------------------------
# filters
# ---------------------------------------------------------------------------------
FILTERS_BUDGET = ("0.3 min of CPU on one core: digits and Fashion-MNIST 14x14, 3 seeds, 50 inner steps of the "
                  "rule and of the control; plus 50 steps per meta-training snapshot when a run directory is given")
FILTERS_FULL = {"datasets": ("digits", "fashion_mnist14"), "steps": 50, "seeds": 3, "n_units": 16,
                "max_snapshots": 5}
FILTERS_QUICK = {"datasets": ("digits",), "steps": 3, "seeds": 2, "n_units": 4, "max_snapshots": 2}


def unpermute_rows(W, perm) -> np.ndarray:
    """Rows of ``W [N0, N1]`` put back in the unpermuted input order: inputs are ``x[:, perm]``, so row
    j of W reads original input ``perm[j]``; the result's row ``perm[j]`` is W's row j."""
    W = np.asarray(W)
    out = np.empty_like(W)
    out[np.asarray(perm)] = W
    return out


def class_templates(dataset) -> np.ndarray:
    """Class-mean images minus the mean image, ``[n_classes, N0]``, on the unpermuted train split."""
    x, labels = dataset.arrays("train", dtype=np.float64)
    means = np.stack([x[labels == c].mean(axis=0) for c in range(dataset.n_classes)])
    return means - x.mean(axis=0)


def _corr_rows(A, B):
    A = A - A.mean(axis=1, keepdims=True)
    B = B - B.mean(axis=1, keepdims=True)
    na, nb = np.linalg.norm(A, axis=1, keepdims=True), np.linalg.norm(B, axis=1, keepdims=True)
    return (A / np.maximum(na, 1e-300)) @ (B / np.maximum(nb, 1e-300)).T


def template_score(fields, templates) -> float:
    """Mean over units of ``max_c |corr(field_u, template_c)|``; ``fields [units, N0]``."""
    return float(np.abs(_corr_rows(np.asarray(fields, np.float64), templates)).max(axis=1).mean())


def smoothness(fields, image_shape) -> float:
    """Mean correlation of each field with itself shifted one pixel right and one pixel down."""
    imgs = np.asarray(fields, np.float64).reshape(-1, *image_shape)
    pairs = [(imgs[:, :, :-1], imgs[:, :, 1:]), (imgs[:, :-1, :], imgs[:, 1:, :])]
    vals = []
    for a, b in pairs:
        a, b = a.reshape(len(imgs), -1), b.reshape(len(imgs), -1)
        vals.append(np.diag(_corr_rows(a, b)))
    return float(np.mean(vals))


def receptive_fields(phi, perm) -> np.ndarray:
    """First-layer receptive fields ``[N1, N0]`` in the unpermuted input order."""
    return unpermute_rows(phi["layer1/W"], perm).T


def _snapshots(run_dir, limit: int):
    from refimpl.params import load_params

    paths = sorted(Path(run_dir, "thetas").glob("theta_*.npz"))
    if not paths:
        raise ValueError(f"filters: {run_dir} has no thetas/theta_*.npz snapshots")
    pick = sorted({int(round(i)) for i in np.linspace(0, len(paths) - 1, min(limit, len(paths)))})
    return [(paths[i].stem, load_params(paths[i], kind="theta")[0]) for i in pick]


def filters(rule="small-glyphs-rotation", out_dir=None, *, quick: bool = False, progress: bool = True,
            settings=None, run_dir=None) -> dict:
    """Receptive fields of phi_0, of phi after the rule and after the control (and after each
    meta-training snapshot of ``run_dir``), with their template scores."""
    from refimpl.data import get_dataset

    s = dict(settings or (FILTERS_QUICK if quick else FILTERS_FULL))
    log = Progress("filters", progress)
    rule, control = rule_and_control(rule)
    out = {}
    snaps = _snapshots(run_dir, s["max_snapshots"]) if run_dir is not None else []
    for name in s["datasets"]:
        ds = get_dataset(name)
        if ds.image_shape is None:
            raise ValueError(f"filters: {name} has no image shape")
        cfg = _eval_cfg(rule, ds)
        templates = class_templates(ds)
        log(f"{name}: {s['seeds']} seeds, {s['steps']} inner steps")
        score = {m: {} for m in ("phi_0", "rule", "control")}
        smooth = {m: {} for m in score}
        images = {}
        for seed in range(s["seeds"]):
            task, phi0 = _task(ds, cfg, seed)
            phis = {"phi_0": phi0, "rule": _trained(rule.theta, phi0, task, s["steps"], cfg, seed),
                    "control": _trained(control.theta, phi0, task, s["steps"], cfg, seed)}
            if seed == 0:
                for stem, theta in snaps:
                    phis[f"snapshot {stem}"] = _trained({k: np.asarray(v, np.float32) for k, v in theta.items()},
                                                        phi0, task, s["steps"], cfg, seed)
            for m, phi in phis.items():
                if phi is None:
                    continue
                fields = receptive_fields(phi, task.perm)
                if m in score:
                    score[m][seed] = template_score(fields, templates)
                    smooth[m][seed] = smoothness(fields, ds.image_shape)
                if seed == 0:
                    images[m] = np.round(fields[:s["n_units"]], 5).tolist()
        out[name] = {"image_shape": list(ds.image_shape), "layer_sizes": list(cfg.layer_sizes),
                     "template_score": {m: mean_se(list(v.values())) for m, v in score.items()},
                     "smoothness": {m: mean_se(list(v.values())) for m, v in smooth.items()},
                     "rule_vs_phi_0": compare(score["rule"], score["phi_0"]),
                     "control_vs_phi_0": compare(score["control"], score["phi_0"]),
                     "rule_vs_control": compare(score["rule"], score["control"]),
                     "smoothness_rule_vs_phi_0": compare(smooth["rule"], smooth["phi_0"]),
                     "images_seed_0": images}
    return finish_report("filters", "first-layer receptive fields, input permutation undone", rule, control, quick,
                         FILTERS_BUDGET, log, out_dir, filters_markdown, filters_figure,
                         **{"settings": {**s, "run_dir": None if run_dir is None else str(run_dir),
                           "snapshots": [stem for stem, _ in snaps]}, "datasets": out})


def filters_markdown(report) -> str:
    lines = header(report)
    lines += [f"After {report['settings']['steps']} inner steps. Template score: mean over units of the largest "
              "|corr| with a class-mean image (minus the mean image); smoothness: correlation of a field with "
              "itself shifted by one pixel. Noise scores about 0 on smoothness.", "",
              "| dataset | phi | template score | vs phi_0 | smoothness |", "|---|---|---:|---:|---:|"]
    for name, d in report["datasets"].items():
        for m in ("phi_0", "rule", "control"):
            vs = "" if m == "phi_0" else fmt(d[f"{m}_vs_phi_0"], signed=True)
            lines.append(f"| {name} | {m} | {fmt(d['template_score'][m])} | {vs} | {fmt(d['smoothness'][m])} |")
    if report["settings"]["snapshots"]:
        lines += ["", f"Meta-training snapshots shown (seed 0 only): {', '.join(report['settings']['snapshots'])}"]
    return "\n".join(lines) + "\n"


def filters_figure(report):
    names = list(report["datasets"])
    panels = [(name, m) for name in names for m in report["datasets"][name]["images_seed_0"]]
    n_units = report["settings"]["n_units"]
    cols = min(8, n_units)
    rows_per = -(-n_units // cols)
    fig, axes = new_figure(1.1 * cols + 1.2, 1.15 * rows_per * len(panels) + 0.6, rows_per * len(panels), cols)
    image = None
    for p, (name, m) in enumerate(panels):
        d = report["datasets"][name]
        fields = np.asarray(d["images_seed_0"][m])
        for u in range(rows_per * cols):
            ax = axes[p * rows_per + u // cols, u % cols]
            ax.set_xticks([])
            ax.set_yticks([])
            if u >= len(fields):
                ax.set_visible(False)
                continue
            f = fields[u] / max(float(np.abs(fields[u]).max()), 1e-12)
            image = ax.imshow(f.reshape(d["image_shape"]), cmap="RdBu_r", vmin=-1, vmax=1)
            if u % cols == 0:
                ax.set_ylabel(f"{name}\n{m}", fontsize=6)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.5, label="weight / max |weight| of the unit")
    fig.suptitle(f"{report['rule']}: first-layer fields, seed 0, {report['settings']['steps']} inner steps "
                 f"(permutation undone)", fontsize=8)
    return fig

