"""Oracle and registry entries for batch norm: SPEC 3 transcribed plainly.

Loops over every kept index; statistics written out as sums, not calls to
mean/var, so a wrong reduction axis in refimpl cannot be shared here.
"""

import autograd.numpy as anp
import numpy as np

from refimpl.ops.batchnorm import batchnorm_backward, batchnorm_forward
from refimpl.reference.registry import OpInfo, Sample


def batchnorm_reference(m, gamma=None, beta=None, *, axes, eps):
    axes = tuple(sorted(a % m.ndim for a in axes))
    kept = [i for i in range(m.ndim) if i not in axes]
    perm = kept + list(axes)
    moved = anp.transpose(m, perm)
    n_kept = int(np.prod([m.shape[i] for i in kept])) if kept else 1
    count = int(np.prod([m.shape[i] for i in axes]))
    flat = anp.reshape(moved, (n_kept, count))
    rows = []
    for r in range(n_kept):
        v = flat[r]
        mu = anp.sum(v) / count
        var = anp.sum((v - mu) ** 2) / count
        out = (v - mu) / anp.sqrt(var + eps)
        if gamma is not None:
            out = out * anp.reshape(gamma, (-1,))[r]
        if beta is not None:
            out = out + anp.reshape(beta, (-1,))[r]
        rows.append(out)
    stacked = anp.reshape(anp.stack(rows), moved.shape)
    inverse = list(np.argsort(perm))
    return anp.transpose(stacked, inverse)


def batchnorm_vectorized(m, gamma=None, beta=None, *, axes, eps):
    """The same formula vectorised: the benchmark's autograd baseline and the
    batch norm the composed-stage oracles (refimpl/reference/update_step.py) use."""
    axes = tuple(axes)
    mu = anp.mean(m, axis=axes, keepdims=True)
    var = anp.mean((m - mu) ** 2, axis=axes, keepdims=True)
    y = (m - mu) / anp.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def _sample_theta(rng, dtype, size):
    m = rng.standard_normal((size.B, size.N, size.C)) * 2.0 + 0.5
    return Sample(
        inputs={"m": m.astype(dtype),
                "gamma": (1.0 + 0.3 * rng.standard_normal(size.C)).astype(dtype),
                "beta": (0.3 * rng.standard_normal(size.C)).astype(dtype)},
        attrs={"axes": [0, 1], "eps": 1e-3})


def _sample_phi(rng, dtype, size):
    m = rng.standard_normal((size.B, size.N)) * 0.05 + 0.01
    return Sample(inputs={"m": m.astype(dtype)}, attrs={"axes": [0], "eps": 1e-6})


def _bad_inputs(rng):
    m = rng.standard_normal((4, 3, 2))
    return [
        ({"m": m, "gamma": np.ones(3)}, {"axes": [0, 1], "eps": 1e-3}, "gamma"),
        ({"m": m, "beta": np.ones((2, 1))}, {"axes": [0, 1], "eps": 1e-3}, "beta"),
        ({"m": m}, {"axes": [0, 5], "eps": 1e-3}, "axes"),
        ({"m": m}, {"axes": [0], "eps": 0.0}, "eps"),
        ({"m": m, "gamma": np.ones(2, dtype=np.float32)}, {"axes": [0, 1], "eps": 1e-3}, "dtype"),
    ]


OPINFOS = [
    OpInfo(name="batchnorm_theta", kind="batchnorm", forward=batchnorm_forward,
           backward=batchnorm_backward, reference=batchnorm_reference, vectorized=batchnorm_vectorized, sample=_sample_theta,
           diff_inputs=("m", "gamma", "beta"), derivation="derivations/batchnorm.md",
           bad_inputs=_bad_inputs, any_ndim=("m",)),
    OpInfo(name="batchnorm_phi", kind="batchnorm", forward=batchnorm_forward,
           backward=batchnorm_backward, reference=batchnorm_reference, vectorized=batchnorm_vectorized, sample=_sample_phi,
           diff_inputs=("m",), derivation="derivations/batchnorm.md", any_ndim=("m",)),
]
