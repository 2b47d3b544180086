"""Golden cases of the composed kinds of issue 3 (SPEC 10): ``base_forward``,
``topd``, ``compute_h`` (a top, a middle and a bottom layer) and
``update_step``, each for the ``tiny`` and ``mid`` presets.

Inputs are realistic: weights from the SPEC init, x uniform in [0, 1], and
the ComputeH/TopD inputs taken from a real forward pass of the step (through
the independent transcription, so the stored inputs do not depend on the
code under test).
"""
from __future__ import annotations

import numpy as np

from refimpl.model.base_model import base_backward, base_forward
from refimpl.config import Config, preset
from refimpl.golden import CaseSpec, Evaluation, case_rng, register_kind, register_provider
from refimpl.params import init_phi, init_theta
from refimpl.reference import update_step as oracle
from refimpl.rule.compute_h import compute_h_backward, compute_h_forward
from refimpl.rule.topd import topd_backward, topd_forward
from refimpl.rule.update_step import update_step_forward, update_step_vjp

PRESETS = ("tiny", "mid")
COMPUTE_H_INPUTS = ("d", "x", "z", "W_bot", "W_top", "b")


def _prefixed(prefix: str, arrays: dict) -> dict:
    return {f"{prefix}/{k}": v for k, v in arrays.items()}


def _strip(prefix: str, arrays: dict) -> dict:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def _config(config_dict) -> Config:
    return Config.from_dict(config_dict)


# ------------------------------------------------------------------ evaluators
def _eval_base_forward(inputs, attrs, config_dict):
    config = _config(config_dict)
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
    config = _config(config_dict)
    theta = _strip("theta", inputs)
    d, cache = topd_forward(theta, inputs["xL"], config)

    def vjp(cots):
        dtheta, dxL = topd_backward(cots["d"], cache)
        return {**_prefixed("theta", dtheta), "xL": dxL}
    return Evaluation({"d": d}, vjp)


def _eval_compute_h(inputs, attrs, config_dict):
    config = _config(config_dict)
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
    config = _config(config_dict)
    theta, phi = _strip("theta", inputs), _strip("phi", inputs)
    phi_next, deltas, cache = update_step_forward(theta, phi, inputs["x"], config)
    outputs = {**_prefixed("phi", phi_next), **_prefixed("delta", deltas)}

    def vjp(cots):
        dtheta, dphi = update_step_vjp(_strip("phi", cots), cache)
        return {**_prefixed("theta", dtheta), **_prefixed("phi", dphi)}
    return Evaluation(outputs, vjp, value_only=frozenset(_prefixed("delta", deltas)))


# ------------------------------------------------------------------ cases
def _state(name: str, config: Config):
    rng = case_rng(name)
    theta = init_theta(config, rng)
    phi = init_phi(config, rng)
    x = rng.uniform(0.0, 1.0, (config.batch_size, config.layer_sizes[0]))
    return theta, phi, x


def _cases() -> list[CaseSpec]:
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


register_kind("base_forward", _eval_base_forward)
register_kind("topd", _eval_topd)
register_kind("compute_h", _eval_compute_h)
register_kind("update_step", _eval_update_step)
register_provider(_cases)
