"""Golden cases of the composed kinds of issue 4 (SPEC 10): ``meta_objective``
and ``meta_gradient``, each for the ``tiny`` and ``mid`` presets.

Inputs follow SPEC 2 and 6: phi and theta from the SPEC init, every x in
[0, 1], targets one-hot over n_cls classes followed by n_reg regression
columns in [-1, 1] (2 at tiny, 4 at mid: the glyphs' sin, cos, dx, dy);
n_label, n_cls and U from ``PRESET_EXTRAS``. ``n_cls`` is stored in the case
attrs (the targets' width is n_cls + n_reg, so it cannot be read from them).

``meta_objective``: outputs ``out/loss`` (mean over the n_eval pairs), grads
``grad/phi/*`` (every phi name; the V ones are zero).
``meta_gradient``: outputs ``out/loss`` (J) and ``out/phi/*`` (the final
phi, value-only: no cotangent), ``cot/loss`` fixed at 1.0, grads
``grad/theta/*`` (dJ/dtheta times the loss cotangent).
"""
from __future__ import annotations

import numpy as np

from refimpl.config import PRESET_EXTRAS, Config, preset
from refimpl.golden import CaseSpec, Evaluation, case_rng, register_kind, register_provider
from refimpl.model.meta_objective import meta_objective_backward, meta_objective_forward
from refimpl.params import init_phi, init_theta
from refimpl.model.unroll import UnrollBatches, meta_gradient

PRESETS = ("tiny", "mid")
#: Regression columns after the one-hot classes, per preset.
N_REG = {"tiny": 2, "mid": 4}


def _prefixed(prefix: str, arrays: dict) -> dict:
    return {f"{prefix}/{k}": v for k, v in arrays.items()}


def _strip(prefix: str, arrays: dict) -> dict:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def _n_cls(attrs) -> int:
    if "n_cls" not in attrs:
        raise ValueError("golden case attrs lack 'n_cls' (the number of one-hot class columns)")
    return int(attrs["n_cls"])


# ------------------------------------------------------------------ evaluators
def _eval_meta_objective(inputs, attrs, config_dict):
    config = Config.from_dict(config_dict)
    phi = _strip("phi", inputs)
    loss, _, cache = meta_objective_forward(phi, inputs["x_a"], inputs["y_a"], inputs["x_b"], inputs["y_b"],
                                            config, n_cls=_n_cls(attrs))

    def vjp(cots):
        return _prefixed("phi", meta_objective_backward(cots["loss"], cache))
    return Evaluation({"loss": loss}, vjp)


def _eval_meta_gradient(inputs, attrs, config_dict):
    config = Config.from_dict(config_dict)
    theta, phi = _strip("theta", inputs), _strip("phi", inputs)
    batches = UnrollBatches(inputs["x"], inputs["x_a"], inputs["x_b"], inputs["y_a"], inputs["y_b"])
    result = meta_gradient(theta, phi, batches, config, n_cls=_n_cls(attrs))
    dtype = inputs["x"].dtype
    outputs = {"loss": np.asarray(result.loss, dtype=dtype), **_prefixed("phi", result.phi_final)}

    def vjp(cots):
        g = np.asarray(cots["loss"], dtype=dtype)   # J is scalar: the VJP is dJ/dtheta scaled
        return _prefixed("theta", {k: g * v for k, v in result.dtheta.items()})
    return Evaluation(outputs, vjp, value_only=frozenset(_prefixed("phi", result.phi_final)),
                      fixed_cotangents={"loss": 1.0})


# ------------------------------------------------------------------ cases
def _targets(rng, lead: tuple, n_cls: int, n_reg: int) -> np.ndarray:
    onehot = np.eye(n_cls)[rng.integers(0, n_cls, size=lead)]
    return np.concatenate([onehot, rng.uniform(-1.0, 1.0, lead + (n_reg,))], axis=-1)


def _pairs(rng, lead: tuple, config: Config, n_label: int, n_cls: int, n_reg: int) -> dict:
    shape = lead + (config.n_eval, n_label)
    return {"x_a": rng.uniform(0.0, 1.0, shape + (config.layer_sizes[0],)),
            "x_b": rng.uniform(0.0, 1.0, shape + (config.layer_sizes[0],)),
            "y_a": _targets(rng, shape, n_cls, n_reg),
            "y_b": _targets(rng, shape, n_cls, n_reg)}


def _cases() -> list[CaseSpec]:
    cases = []
    for preset_name in PRESETS:
        config = preset(preset_name)
        cfg = config.to_dict()
        extras = PRESET_EXTRAS[preset_name]
        n_label, n_cls, U = extras["n_label"], extras["n_cls"], extras["U"]
        n_reg = N_REG[preset_name]
        attrs = {"n_cls": n_cls}

        name = f"meta_objective-{preset_name}"
        rng = case_rng(name)
        phi = init_phi(config, rng)
        inputs = {**_prefixed("phi", phi), **_pairs(rng, (), config, n_label, n_cls, n_reg)}
        cases.append(CaseSpec(name, "meta_objective", inputs, dict(attrs), cfg, preset_name))

        name = f"meta_gradient-{preset_name}"
        rng = case_rng(name)
        theta = init_theta(config, rng)
        phi = init_phi(config, rng)
        x = rng.uniform(0.0, 1.0, (U, config.batch_size, config.layer_sizes[0]))
        inputs = {**_prefixed("theta", theta), **_prefixed("phi", phi), "x": x,
                  **_pairs(rng, (U,), config, n_label, n_cls, n_reg)}
        cases.append(CaseSpec(name, "meta_gradient", inputs, dict(attrs), cfg, preset_name))
    return cases


register_kind("meta_objective", _eval_meta_objective)
register_kind("meta_gradient", _eval_meta_gradient)
register_provider(_cases)
