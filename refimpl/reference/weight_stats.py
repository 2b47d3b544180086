"""Oracle and registry entries for WeightStats: SPEC 3 transcribed plainly.

One group (a column for axis 0, a row for axis 1) at a time; every statistic
written as an explicit sum divided by the group size.
"""
import autograd.numpy as anp
import numpy as np

from refimpl.ops.weight_stats import weight_stats_backward, weight_stats_forward
from refimpl.reference.registry import OpInfo, Sample


def weight_stats_reference(M, *, axis, eps=1e-8):
    groups = [M[:, j] for j in range(M.shape[1])] if axis == 0 else [M[i, :] for i in range(M.shape[0])]
    rows = []
    for v in groups:
        n = v.shape[0]
        mean = anp.sum(v) / n
        rows.append(anp.stack([
            anp.sum(anp.abs(v)) / n,
            anp.sqrt(anp.sum(v * v) / n + eps),
            mean,
            anp.sqrt(anp.sum((v - mean) ** 2) / n + eps),
        ]))
    return anp.stack(rows)


def weight_stats_vectorized(M, *, axis, eps=1e-8):
    """[mean|m|, sqrt(mean m^2 + eps), mean m, sqrt(var m + eps)] reducing over ``axis``, vectorised:
    the benchmark's autograd baseline and the WeightStats the composed-stage oracles use."""
    mean = anp.mean(M, axis=axis)
    centred = M - anp.expand_dims(mean, axis)
    return anp.stack([anp.mean(anp.abs(M), axis=axis),
                      anp.sqrt(anp.mean(M ** 2, axis=axis) + eps),
                      mean,
                      anp.sqrt(anp.mean(centred ** 2, axis=axis) + eps)], axis=1)


def _sampler(axis):
    def sample(rng, dtype, size):
        # Weight-like scale with an offset so mean m and mean |m| differ; a
        # continuous draw never hits the kink of |m| at exactly 0.
        M = 0.3 * rng.standard_normal((size.N, size.Nout)) + 0.05
        return Sample(inputs={"M": M.astype(dtype)}, attrs={"axis": axis, "eps": 1e-8})
    return sample


def _bad_inputs(rng):
    M = rng.standard_normal((4, 3))
    return [
        ({"M": M}, {"axis": 2}, "axis"),
        ({"M": M}, {"axis": (0, 1)}, "axis"),
        ({"M": M}, {"axis": 0, "eps": 0.0}, "eps"),
        ({"M": M.astype(np.int32)}, {"axis": 0}, "'M'"),
        ({"M": np.zeros((0, 3))}, {"axis": 0}, "'M'"),
    ]


OPINFOS = [
    OpInfo(name=f"weight_stats_axis{axis}", kind="weight_stats", forward=weight_stats_forward, vectorized=weight_stats_vectorized,
           backward=weight_stats_backward, reference=weight_stats_reference, sample=_sampler(axis),
           diff_inputs=("M",), derivation="derivations/weight_stats.md", bad_inputs=_bad_inputs)
    for axis in (0, 1)
]
