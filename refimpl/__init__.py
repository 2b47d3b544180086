"""refimpl: reference implementation of Metz et al. (ICLR 2019, arXiv:1804.00222), plain NumPy.

The entry points, imported on first use so that ``import refimpl`` stays light::

    import numpy as np, refimpl
    config = refimpl.preset("tiny")
    rng = np.random.default_rng(0)
    theta, phi = refimpl.init_theta(config, rng), refimpl.init_phi(config, rng)
    phi = refimpl.update_step(theta, phi, x, config)         # x [B, N^0]: one unsupervised step
    refimpl.save("theta.npz", theta, config, "theta"); theta, config = refimpl.load("theta.npz")

Config, preset (SPEC 1); init_theta, init_phi, save, load (SPEC 9); update_step (SPEC 4-5);
meta_objective (SPEC 6); meta_gradient and UnrollBatches (SPEC 7); get_dataset (SPEC 8);
load_rule, list_rules (the shipped rules); evaluate_rule (a rule against every baseline, as
``refimpl eval``)::

    theta, config, info = refimpl.load_rule("small-glyphs-rotation")
    report = refimpl.evaluate_rule("small-glyphs-rotation", ["digits"], inner_steps=[0, 100], seeds=10)

Layers (tests/test_layers.py, one order): validate, metric, npzio, runtime -> ops -> config, params
-> base_model -> rule -> meta (meta_objective -> unroll) -> reference -> data -> pretrained -> train
-> evaluation, golden -> cli. This package's own namespace sits at the top beside cli: its entry
points are imported only on first use.
"""
__version__ = "0.1.0"

__all__ = ["Config", "preset", "init_theta", "init_phi", "update_step", "meta_objective", "meta_gradient",
           "UnrollBatches", "save", "load", "get_dataset", "load_rule", "list_rules", "evaluate_rule"]


def _entry_points() -> dict:
    from refimpl.config import Config, preset
    from refimpl.data import get_dataset
    from refimpl.evaluation.suite import evaluate_rule
    from refimpl.meta.meta_objective import meta_objective
    from refimpl.meta.unroll import UnrollBatches, meta_gradient
    from refimpl.params import init_phi, init_theta, load_params, save_params
    from refimpl.pretrained import list_rules, load_rule
    from refimpl.rule.update_step import update_step

    return {"Config": Config, "preset": preset, "init_theta": init_theta, "init_phi": init_phi,
            "update_step": update_step, "meta_objective": meta_objective, "meta_gradient": meta_gradient,
            "UnrollBatches": UnrollBatches, "save": save_params, "load": load_params, "get_dataset": get_dataset,
            "load_rule": load_rule, "list_rules": list_rules, "evaluate_rule": evaluate_rule}


def __getattr__(name: str):
    if name in __all__:
        value = _entry_points()[name]
        globals()[name] = value          # later lookups skip this function
        return value
    raise AttributeError(f"module 'refimpl' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
