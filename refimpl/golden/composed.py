"""Golden cases of the composed kinds (SPEC 10's second table), each for the ``tiny`` and
``mid`` presets:

- ``base_forward``, ``topd``, ``compute_h`` (a top, a middle and a bottom
  layer) and ``update_step``: weights from the SPEC init, x uniform in
  [0, 1], and the ComputeH/TopD inputs taken from a real forward pass of the
  step (through the independent transcription, so the stored inputs do not
  depend on the code under test);
- ``meta_objective`` and ``meta_gradient`` (SPEC 2 and 6): phi and theta
  from the SPEC init, every x in [0, 1], targets one-hot over n_cls classes
  followed by n_reg regression columns in [-1, 1] (2 at tiny, 4 at mid: the
  glyphs' sin, cos, dx, dy); n_label, n_cls and U from ``PRESET_EXTRAS``.
  ``n_cls`` is stored in the case attrs (the targets' width is
  n_cls + n_reg, so it cannot be read from them). ``meta_objective``:
  output ``out/loss`` (mean over the n_eval pairs), grads ``grad/phi/*``
  (every phi name; the V ones are zero). ``meta_gradient``: outputs
  ``out/loss`` (J) and ``out/phi/*`` (the final phi, value-only: no
  cotangent), ``cot/loss`` fixed at 1.0, grads ``grad/theta/*`` (dJ/dtheta
  times the loss cotangent).
"""
from __future__ import annotations

import numpy as np

from refimpl.base_model.mlp import base_backward, base_forward
from refimpl.config import PRESET_EXTRAS, Config, preset
from refimpl.golden.contract import CaseSpec, Evaluation, Evaluator, case_rng
from refimpl.meta.meta_objective import meta_objective_backward, meta_objective_forward
from refimpl.meta.unroll import UnrollBatches, meta_gradient
from refimpl.params import init_phi, init_theta
from refimpl.reference import update_step as oracle
from refimpl.rule.compute_h import compute_h_backward, compute_h_forward
from refimpl.rule.topd import topd_backward, topd_forward
from refimpl.rule.update_step import update_step_forward, update_step_vjp

PRESETS = ("tiny", "mid")
COMPUTE_H_INPUTS = ("d", "x", "z", "W_bot", "W_top", "b")
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
def _eval_base_forward(inputs, attrs, config_dict):
    config = Config.from_dict(config_dict)
    phi = _strip("phi", inputs)
    xs, zs, cache = base_forward(phi, inputs["x"], config)
    outputs = {f"x{l}": xl for l, xl in enumerate(xs)}
    outputs.update({f"z{l + 1}": zl for l, zl in enumerate(zs)})

    def vjp(cots):
        dphi, dx = base_backward([cots.get(f"x{l}") for l in range(len(xs))],
                                 [cots.get(f"z{l + 1}") for l in range(len(zs))], cache)
        return {**_prefixed("phi", dphi), "x": dx}
    return Evaluation(outputs, vjp)


def _eval_topd(inputs, attrs, config_dict):
    config = Config.from_dict(config_dict)
    theta = _strip("theta", inputs)
    d, cache = topd_forward(theta, inputs["xL"], config)

    def vjp(cots):
        dtheta, dxL = topd_backward(cots["d"], cache)
        return {**_prefixed("theta", dtheta), "xL": dxL}
    return Evaluation({"d": d}, vjp)


def _eval_compute_h(inputs, attrs, config_dict):
    config = Config.from_dict(config_dict)
    theta = _strip("theta", inputs)
    args = {name: inputs.get(name) for name in COMPUTE_H_INPUTS}
    h, cache = compute_h_forward(theta, config=config, **args)

    def vjp(cots):
        grads = compute_h_backward(cots["h"], cache)
        out = _prefixed("theta", grads.theta)
        out.update({name: getattr(grads, name) for name in COMPUTE_H_INPUTS if getattr(grads, name) is not None})
        return out
    return Evaluation({"h": h}, vjp)


def _eval_update_step(inputs, attrs, config_dict):
    config = Config.from_dict(config_dict)
    theta, phi = _strip("theta", inputs), _strip("phi", inputs)
    phi_next, deltas, cache = update_step_forward(theta, phi, inputs["x"], config)
    outputs = {**_prefixed("phi", phi_next), **_prefixed("delta", deltas)}

    def vjp(cots):
        dtheta, dphi = update_step_vjp(_strip("phi", cots), cache)
        return {**_prefixed("theta", dtheta), **_prefixed("phi", dphi)}
    return Evaluation(outputs, vjp, value_only=frozenset(_prefixed("delta", deltas)))


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
def _state(name: str, config: Config):
    rng = case_rng(name)
    theta = init_theta(config, rng)
    phi = init_phi(config, rng)
    x = rng.uniform(0.0, 1.0, (config.batch_size, config.layer_sizes[0]))
    return theta, phi, x


def _step_cases() -> list[CaseSpec]:
    cases = []
    for preset_name in PRESETS:
        config = preset(preset_name)
        cfg = config.to_dict()
        L = len(config.layer_sizes) - 1

        name = f"base_forward-{preset_name}"
        _, phi, x = _state(name, config)
        cases.append(CaseSpec(name, "base_forward", {**_prefixed("phi", phi), "x": x}, {}, cfg, preset_name))

        name = f"update_step-{preset_name}"
        theta, phi, x = _state(name, config)
        cases.append(CaseSpec(name, "update_step", {**_prefixed("theta", theta), **_prefixed("phi", phi), "x": x},
                              {}, cfg, preset_name))

        # TopD and ComputeH inputs from a real step of the transcription
        name = f"topd-{preset_name}"
        theta, phi, x = _state(name, config)
        _, _, internals = oracle.update_step(theta, phi, x, config, return_internals=True)
        topd_theta = {k: v for k, v in theta.items() if k.startswith("topd/")}
        cases.append(CaseSpec(name, "topd", {**_prefixed("theta", topd_theta), "xL": internals["xs"][L]},
                              {}, cfg, preset_name))

        ch_theta = _prefixed("theta", {k: v for k, v in theta.items() if k.startswith("computeh/")})
        for layer_name, l in (("top", L), ("middle", 1), ("bottom", 0)):
            inputs = {"d": np.asarray(internals["d"][l]), "x": internals["xs"][l]}
            if l >= 1:
                inputs.update({"z": internals["zs"][l], "W_bot": phi[f"layer{l}/W"], "b": phi[f"layer{l}/b"]})
            if l < L:
                inputs["W_top"] = phi[f"layer{l + 1}/W"]
            cases.append(CaseSpec(f"compute_h-{preset_name}-{layer_name}", "compute_h", {**ch_theta, **inputs},
                                  {"layer": layer_name}, cfg, preset_name))
    return cases


def _targets(rng, lead: tuple, n_cls: int, n_reg: int) -> np.ndarray:
    onehot = np.eye(n_cls)[rng.integers(0, n_cls, size=lead)]
    return np.concatenate([onehot, rng.uniform(-1.0, 1.0, lead + (n_reg,))], axis=-1)


def _pairs(rng, lead: tuple, config: Config, n_label: int, n_cls: int, n_reg: int) -> dict:
    shape = lead + (config.n_eval, n_label)
    return {"x_a": rng.uniform(0.0, 1.0, shape + (config.layer_sizes[0],)),
            "x_b": rng.uniform(0.0, 1.0, shape + (config.layer_sizes[0],)),
            "y_a": _targets(rng, shape, n_cls, n_reg),
            "y_b": _targets(rng, shape, n_cls, n_reg)}


def _meta_cases() -> list[CaseSpec]:
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


EVALUATORS: dict[str, Evaluator] = {
    "base_forward": _eval_base_forward,
    "topd": _eval_topd,
    "compute_h": _eval_compute_h,
    "update_step": _eval_update_step,
    "meta_objective": _eval_meta_objective,
    "meta_gradient": _eval_meta_gradient,
}


def cases() -> list[CaseSpec]:
    return _step_cases() + _meta_cases()
