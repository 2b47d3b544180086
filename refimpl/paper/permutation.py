"""The rule with and without a random permutation of the input dimensions.

Most of what the rule computes for a unit depends on that unit's own
weights and activity and on sums over the others (neuron-locality, SPEC
3-5), but not all: ComputeH runs ConvUnit, a convolution along the unit
axis, and reads the positional channels p0, p1 (SPEC 4), as the paper's
architecture does. So the rule is *not* exactly equivariant to a
permutation of the inputs: :func:`equivariance_gap` applies it to (phi_0,
x) and to (phi_0 with its input rows permuted, x permuted), same batches,
in float64, and measures how far the two trajectories drift apart. What
makes the rule permutation invariant is meta-training, where every task
permutes its inputs (SPEC 7): the rule cannot use a pixel's position, so it
should not matter. The statistical check: the same evaluation with and
without a random permutation, paired per seed (same phi_0, same labeled
examples, same unlabeled batches); the difference must lie within its
standard errors.

The two arms run :func:`refimpl.evaluation.benchmark.benchmark` with
``permute=True`` and ``permute=False`` on the same seeds.
"""
from __future__ import annotations

import numpy as np

from refimpl.paper.common import (
    SIGNIFICANCE_SE,
    Progress,
    compare,
    errorbar,
    finish_report,
    fmt,
    header,
    mean_se,
    new_figure,
    per_seed_acc,
    rule_and_control,
    step_axis,
)

PERMUTATION_BUDGET = ("0.2 min of CPU on one core: digits, (rule, control) x (permuted, not) x 5 seeds x 5 trials "
                      "to 30 inner steps; the equivariance check 30 steps in float64")
PERMUTATION_FULL = {"dataset": "digits", "steps": (0, 10, 30), "seeds": 5, "n_trials": 5, "k_shot": 10,
                    "k_query": 10, "equivariance_steps": 30}
PERMUTATION_QUICK = {"dataset": "digits", "steps": (0, 2), "seeds": 2, "n_trials": 2, "k_shot": 5,
                     "k_query": 5, "equivariance_steps": 2}


def permute_phi_inputs(phi: dict, perm) -> dict:
    """phi for inputs ``x[:, perm]``: the rows of ``layer1/W`` and ``layer1/V`` taken in the order
    ``perm``, so ``x[:, perm] @ W[perm] = x @ W``."""
    perm = np.asarray(perm)
    out = dict(phi)
    for k in ("layer1/W", "layer1/V"):
        out[k] = np.ascontiguousarray(phi[k][perm])
    return out


def equivariance_gap(theta, config, dataset, n_steps: int, seed: int = 0) -> dict:
    """Apply the rule ``n_steps`` times to (phi_0, inputs) and to (phi_0 with its input rows permuted,
    permuted inputs), same batches, in float64; return the largest absolute differences of the top
    features on a test batch and of phi (first-layer rows un-permuted), and the permutation's
    fraction of moved inputs."""
    from refimpl.evaluation.fewshot import eval_config, features
    from refimpl.params import init_phi
    from refimpl.rule.update_step import update_step

    cfg = eval_config(config, dataset.n_features)
    rng = np.random.default_rng([seed, 5])
    perm = dataset.random_permutation(rng)
    theta = {k: np.asarray(v, np.float64) for k, v in theta.items()}
    phi_a = init_phi(cfg, rng, np.float64)
    phi_b = permute_phi_inputs(phi_a, perm)
    batch_rng = np.random.default_rng([seed, 6])
    for _ in range(n_steps):
        x = dataset.unlabeled_batch(batch_rng, cfg.batch_size, dtype=np.float64)
        phi_a = update_step(theta, phi_a, x, cfg)
        phi_b = update_step(theta, phi_b, np.ascontiguousarray(x[:, perm]), cfg)
    x_test, _ = dataset.arrays("test", dtype=np.float64)
    fa, fb = features(phi_a, x_test, cfg), features(phi_b, np.ascontiguousarray(x_test[:, perm]), cfg)
    phi_gap = max(float(np.abs(permute_phi_inputs(phi_a, perm)[k] - phi_b[k]).max()) for k in phi_a)
    return {"steps": int(n_steps), "feature_gap": float(np.abs(fa - fb).max()),
            "feature_scale": float(np.abs(fa).max()), "phi_gap": phi_gap,
            "moved_fraction": float(np.mean(perm != np.arange(len(perm))))}


def permutation(rule="small-glyphs-rotation", out_dir=None, *, quick: bool = False, progress: bool = True,
                settings=None) -> dict:
    """Few-shot accuracy with and without a random input permutation (paired per seed), and the
    exact equivariance check."""
    from refimpl.data import get_dataset
    from refimpl.evaluation.benchmark import benchmark

    s = dict(settings or (PERMUTATION_QUICK if quick else PERMUTATION_FULL))
    log = Progress("permutation", progress)
    rule, control = rule_and_control(rule)
    ds = get_dataset(s["dataset"])
    arms = {}
    for r in (rule, control):
        for permute in (True, False):
            log(f"{r.name}, {'permuted' if permute else 'unpermuted'} inputs, {s['seeds']} seeds")
            arms[(r.name, permute)] = benchmark(r.theta, r.config, ds, seeds=list(range(s["seeds"])),
                                                inner_steps=s["steps"], baselines=(), k_shot=s["k_shot"],
                                                k_query=s["k_query"], n_trials=s["n_trials"], progress=False,
                                                permute=permute)
    rows = []
    for r in (rule, control):
        for st in s["steps"]:
            a, b = per_seed_acc(arms[(r.name, True)], f"rule@{st}"), per_seed_acc(arms[(r.name, False)], f"rule@{st}")
            diff = compare(a, b)
            phi0 = per_seed_acc(arms[(r.name, True)], "rule@0")
            rows.append({"theta": r.name, "step": int(st), "phi_0": mean_se(list(phi0.values())),
                         "permuted": mean_se(list(a.values())),
                         "unpermuted": mean_se(list(b.values())), "permuted_vs_unpermuted": diff,
                         "per_seed_identical": int(sum(a[k] == b[k] for k in set(a) & set(b))),
                         "agree": bool(abs(diff["mean"]) <= SIGNIFICANCE_SE * diff["se"])})
    log(f"equivariance check, {s['equivariance_steps']} steps in float64")
    gap = equivariance_gap(rule.theta, rule.config, ds, s["equivariance_steps"])
    return finish_report("permutation", f"random permutation of the input dimensions ({s['dataset']})", rule, control, quick,
                         PERMUTATION_BUDGET, log, out_dir, permutation_markdown, permutation_figure,
                         **{"settings": s, "rows": rows,
              "equivariance": gap})


def permutation_markdown(report) -> str:
    lines = header(report)
    lines += ["| theta | inner steps | phi_0 (permuted) | permuted | unpermuted | permuted minus unpermuted (paired) "
              f"| within {SIGNIFICANCE_SE:g} s.e. |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['theta']} | {r['step']} | {fmt(r['phi_0'])} | {fmt(r['permuted'])} | {fmt(r['unpermuted'])} "
                     f"| {fmt(r['permuted_vs_unpermuted'], signed=True)} | {'yes' if r['agree'] else 'no'} |")
    g = report["equivariance"]
    lines += ["", f"Equivariance (float64, {g['steps']} inner steps, phi_0's input rows permuted with the inputs): "
              f"largest feature difference {g['feature_gap']:.2e} (features up to {g['feature_scale']:.2f}), "
              f"largest phi difference {g['phi_gap']:.2e}; the permutation moves {g['moved_fraction']:.0%} of "
              "the inputs. The gap is not zero because ComputeH convolves along the unit axis and reads "
              "positional channels (SPEC 4): the rule is not permutation-equivariant by construction; "
              "meta-training on permuted tasks is what makes an input's position irrelevant to it."]
    return "\n".join(lines) + "\n"


def permutation_figure(report):
    fig, axes = new_figure(9, 3.6, 1, 2, sharey=True)
    for ax, name in zip(axes[0], dict.fromkeys(r["theta"] for r in report["rows"])):
        rows = [r for r in report["rows"] if r["theta"] == name]
        steps = [r["step"] for r in rows]
        errorbar(ax, steps, [r["permuted"] for r in rows], "permuted inputs", color="C0")
        errorbar(ax, steps, [r["unpermuted"] for r in rows], "unpermuted inputs", color="C1", ls="--")
        step_axis(ax, steps)
        ax.set_title(name if name != "control" else "random-theta control", fontsize=9)
    axes[0, 0].set_ylabel("few-shot accuracy")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle(f"{report['rule']} on {report['settings']['dataset']}: error bars 1 s.e. over "
                 f"{report['settings']['seeds']} seeds (same phi_0 and examples in both arms)", fontsize=9)
    return fig
