"""A fixed probe task for watching a rule during meta-training: diagnostics of the features it makes.

:func:`probe_rule` applies theta to one fixed random base model for a few
inner steps on unlabeled glyphs in the training fonts (the dataset of PROBE), then reads out the
top features on labeled glyphs in the held-out (``select``) font families, support and query
from different fonts: the SPEC 6
objective J (one pair), the few-shot accuracy of the same readout on a
disjoint query set, and :func:`~refimpl.evaluation.diagnostics.feature_diagnostics`.
The same task, phi_0, unlabeled batches and labeled batches are used every
time, so successive calls during a run differ only in theta.
"""
from __future__ import annotations

import numpy as np

from refimpl.config import Config
from refimpl.data import get_dataset
from refimpl.evaluation.diagnostics import feature_diagnostics, readout_objective
from refimpl.params import init_phi

#: The probe task: glyphs rotated but not shifted (the small preset's data), 20-way,
#: 10-shot support + 10 query examples per class, the evaluation net's hidden widths.
PROBE = {"dataset": "glyphs_rotation", "n_way": 20, "k_shot": 10, "k_query": 10, "hidden": (64, 64),
         "seed": 12345}


def probe_rule(theta, config: Config, inner_steps=(0, 25, 50, 100), probe: dict = PROBE) -> list[dict]:
    """The meta-objective and diagnostics of a rule on one fixed probe task, after each of ``inner_steps``.

    The probe task (``probe``: a glyph dataset, 20 ways, 10 shots, a fixed seed) is the same for
    every call, so rows of different snapshots of a meta-training run compare.

    Parameters
    ----------
    theta : Mapping[str, ndarray] or None
        The rule; None leaves phi_0 unchanged (every row then describes phi_0).
    config : Config
        The rule's configuration.
    inner_steps : sequence of int
        The unsupervised steps after which to measure (sorted ascending).
    probe : dict
        The task: ``dataset``, ``n_way``, ``k_shot``, ``k_query``, ``hidden``, ``seed``.

    Returns
    -------
    list of dict
        One row per step: ``step``, ``J`` (the SPEC 6 meta-objective on the probe), ``J_classes``
        (the same on the class columns alone), ``accuracy`` and
        :func:`~refimpl.evaluation.diagnostics.feature_diagnostics` of the support features; a
        row ``{"step", "diverged": True}`` ends the list if phi became non-finite.
    """
    from refimpl.base_model.mlp import base_forward
    from refimpl.rule.update_step import update_step

    steps = sorted(int(s) for s in inner_steps)
    rng = np.random.default_rng(probe["seed"])
    full = get_dataset(probe["dataset"])
    task = full.sample_classes(rng, probe["n_way"])
    task = task.permuted(task.random_permutation(rng))
    cfg = config.replace(layer_sizes=(task.n_features, *probe["hidden"], config.layer_sizes[-1]))
    dtype = np.float32 if theta is None else next(iter(theta.values())).dtype
    phi = init_phi(cfg, rng, dtype)
    x_s, y_s, x_q, y_q = task.support_query_batch(rng, probe["k_shot"], probe["k_query"], split="test",
                                                  dtype=dtype)
    batch_rng = np.random.default_rng([probe["seed"], 1])
    rows, done = [], 0
    for target in steps:
        while done < target and theta is not None:
            phi = update_step(theta, phi, task.unlabeled_batch(batch_rng, cfg.batch_size, dtype=dtype), cfg)
            done += 1
        if not all(np.isfinite(v).all() for v in phi.values()):
            rows.append({"step": target, "diverged": True})
            break
        f_s = base_forward(phi, x_s, cfg)[0][-1]
        f_q = base_forward(phi, x_q, cfg)[0][-1]
        J, acc = readout_objective(f_s, y_s, f_q, y_q, task.n_classes, cfg.ridge, cfg.eps_p)
        # J of the class columns alone: the glyphs' regression targets (rotation, shift) can move J
        # while the classes do not
        J_cls, _ = readout_objective(f_s, y_s[:, :task.n_classes], f_q, y_q[:, :task.n_classes],
                                     task.n_classes, cfg.ridge, cfg.eps_p)
        rows.append({"step": target, "J": J, "J_classes": J_cls, "accuracy": acc, **feature_diagnostics(f_s)})
    return rows
