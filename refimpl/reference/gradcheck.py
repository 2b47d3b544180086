"""Comparison metric and autograd cross-checks shared by tests, golden and benchmarks."""
from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np

from refimpl.metric import rel_error
from refimpl.reference.registry import OpInfo, Sample, grads_dict

__all__ = ["rel_error", "random_cotangent", "autograd_vjps", "check_op"]


def random_cotangent(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """A random cotangent (never all ones: that hides batch-norm errors)."""
    return rng.standard_normal(shape).astype(dtype)


def autograd_vjps(reference, sample: Sample, names, cotangent) -> dict[str, np.ndarray]:
    """VJPs of ``reference(**inputs, **attrs)`` w.r.t. each input in ``names``."""
    out = {}
    for name in names:
        def scalar(value, name=name):
            inputs = dict(sample.inputs)
            inputs[name] = value
            return anp.sum(reference(**inputs, **sample.attrs) * cotangent)
        out[name] = autograd.grad(scalar)(sample.inputs[name])
    return out


def check_op(info: OpInfo, sample: Sample, rng: np.random.Generator, backward=None):
    """Forward and backward errors of one operator against its oracle.

    Returns (forward_error, {input name: gradient error}). ``backward`` lets
    a test substitute a perturbed backward (testing the tester).
    """
    out, cache = info.run(sample)
    ref_out = info.reference(**sample.inputs, **sample.attrs)
    forward_error = rel_error(out, ref_out)
    names = [n for n in info.diff_inputs if n in sample.inputs]
    if not names:
        return forward_error, {}
    cot = random_cotangent(rng, np.shape(out), out.dtype)
    grads = grads_dict((backward or info.backward)(cot, cache))
    ref64 = Sample({k: v.astype(np.float64) for k, v in sample.inputs.items()}, sample.attrs)
    expected = autograd_vjps(info.reference, ref64, names, cot.astype(np.float64))
    errors = {}
    for name in names:
        if name not in grads:
            raise AssertionError(f"{info.name}: backward returned no gradient for '{name}'")
        g = grads[name]
        if g.shape != sample.inputs[name].shape:
            raise AssertionError(f"{info.name}: grad '{name}' has shape {g.shape}, input {sample.inputs[name].shape}")
        errors[name] = rel_error(g, expected[name])
    return forward_error, errors
