"""Oracles and registry entries for the normalisations (SPEC 3, 4 step 3, 5).

Each is the SPEC formula written out with loops over the kept index and the
statistic summed entry by entry, so a wrong axis, a sum in place of a mean,
or eps in the wrong place in refimpl cannot be shared here.
"""
import autograd.numpy as anp
import numpy as np

from refimpl.ops.normalize import (
    channel_rms_normalize_backward,
    channel_rms_normalize_forward,
    column_normalize_backward,
    column_normalize_forward,
    frobenius_normalize_backward,
    frobenius_normalize_forward,
    plane_normalize_backward,
    plane_normalize_forward,
    row_normalize_backward,
    row_normalize_forward,
)
from refimpl.reference.registry import OpInfo, Sample


def _sum_of_squares(values):
    total = 0.0
    for v in values:
        total = total + v * v
    return total


# --------------------------------------------------------------------------- oracles

def column_normalize_reference(M, *, eps=1e-8):
    n_in, n_out = M.shape
    columns = []
    for j in range(n_out):
        col = M[:, j]
        ms = _sum_of_squares([col[i] for i in range(n_in)]) / n_in
        columns.append(col / anp.sqrt(ms + eps))
    return anp.stack(columns, axis=1)


def frobenius_normalize_reference(M):
    flat = anp.reshape(M, (-1,))
    norm = anp.sqrt(_sum_of_squares([flat[i] for i in range(flat.shape[0])]))
    return M / norm


def plane_normalize_reference(P):
    flat = anp.reshape(P, (-1,))
    n = flat.shape[0]
    ms = _sum_of_squares([flat[i] for i in range(n)]) / n
    return P / anp.sqrt(1.0 + ms)


def channel_rms_normalize_reference(x, *, eps=1e-6):
    B, N, D = x.shape
    rows = []
    for b in range(B):
        units = []
        for n in range(N):
            v = x[b, n]
            ms = _sum_of_squares([v[c] for c in range(D)]) / D
            units.append(v / anp.sqrt(ms + eps))
        rows.append(anp.stack(units))
    return anp.stack(rows)


def row_normalize_reference(P, *, eps=1e-12):
    n_rows, n_cols = P.shape
    rows = []
    for b in range(n_rows):
        row = P[b]
        rows.append(row / anp.sqrt(_sum_of_squares([row[c] for c in range(n_cols)]) + eps))
    return anp.stack(rows)


# --------------------------------------------------------------------------- vectorised forms

# The same formulas in vectorised autograd.numpy, for the benchmark only
# (autograd timed fairly); the tests use the looped oracles above.

def column_normalize_vectorized(M, *, eps=1e-8):
    return M / anp.sqrt(anp.mean(M ** 2, axis=0, keepdims=True) + eps)


def frobenius_normalize_vectorized(M):
    return M / anp.sqrt(anp.sum(M ** 2))


def plane_normalize_vectorized(P):
    return P / anp.sqrt(1.0 + anp.mean(P ** 2))


def channel_rms_normalize_vectorized(x, *, eps=1e-6):
    return x / anp.sqrt(anp.mean(x ** 2, axis=2, keepdims=True) + eps)


def row_normalize_vectorized(P, *, eps=1e-12):
    return P / anp.sqrt(anp.sum(P ** 2, axis=1, keepdims=True) + eps)


# --------------------------------------------------------------------------- samples

def _sample_column(rng, dtype, size):
    # Scale 0.002 (raw weights are ~0.01): eps_w = 1e-8 then changes the
    # output visibly, and with Nin = 1 (Mh ~ sign(M), gradient
    # ~ eps / M^2) the float32 gradient stays resolvable: its relative error
    # is ~6e-8 * M^2 / eps, which needs |M| below ~0.013.
    M = rng.standard_normal((size.N, size.Nout)) * 0.002
    return Sample(inputs={"M": M.astype(dtype)}, attrs={"eps": 1e-8})


def _sample_frobenius(rng, dtype, size):
    # Nout + 1 columns: for a single entry Mf = sign(M) and the VJP is exactly
    # zero, so the relative metric would compare 0 with autograd's rounding.
    M = rng.standard_normal((size.N, size.Nout + 1)) * 0.05 + 0.01
    return Sample(inputs={"M": M.astype(dtype)})


def _sample_frobenius_3d(rng, dtype, size):
    M = rng.standard_normal((size.B, size.N, size.C + 1))
    return Sample(inputs={"M": M.astype(dtype)})


def _sample_plane(rng, dtype, size):
    # Mixed scales: mean(P^2) both below and above the 1 in the root.
    scale = 10.0 ** rng.uniform(-1, 1)
    P = rng.standard_normal((size.N, size.Nout)) * scale
    return Sample(inputs={"P": P.astype(dtype)})


def _sample_plane_vector(rng, dtype, size):
    scale = 10.0 ** rng.uniform(-1, 1)
    return Sample(inputs={"P": (rng.standard_normal(size.N) * scale).astype(dtype)})


def _sample_channel(rng, dtype, size):
    # Scale 0.01: eps_d = 1e-6 then matters (~1%); with D = 1 the gradient is
    # ~eps / x^2 and float32 resolves it only for |x| below ~0.1.
    x = rng.standard_normal((size.B, size.N, size.C)) * 0.01
    return Sample(inputs={"x": x.astype(dtype)}, attrs={"eps": 1e-6})


def _sample_row(rng, dtype, size):
    # C + 1 >= 2 columns (SPEC 6: n_cls >= 2). With one column the output is
    # sign(P) and the gradient ~eps_p / P^2 ~ 1e-12: not resolvable.
    P = rng.standard_normal((size.B, size.C + 1))
    return Sample(inputs={"P": P.astype(dtype)}, attrs={"eps": 1e-12})


# --------------------------------------------------------------------------- bad inputs

def _bad_column(rng):
    M = rng.standard_normal((4, 3))
    return [
        ({"M": M}, {"eps": 0.0}, "eps"),
        ({"M": M}, {"eps": -1e-8}, "eps"),
        ({"M": np.zeros((0, 3))}, {"eps": 1e-8}, "empty"),
        ({"M": M.astype(np.int64)}, {"eps": 1e-8}, "dtype"),
        ({"M": [[1.0, 2.0]]}, {"eps": 1e-8}, "numpy array"),
    ]


def _bad_frobenius(rng):
    return [
        ({"M": np.zeros((4, 3))}, {}, "outside the domain"),
        ({"M": np.zeros((0, 3))}, {}, "outside the domain"),
        ({"M": np.full((2, 2), 1e30, dtype=np.float32)}, {}, "overflows"),
        ({"M": rng.standard_normal((4, 3)).astype(np.float16)}, {}, "dtype"),
    ]


def _bad_plane(rng):
    return [
        ({"P": np.zeros((0,))}, {}, "empty"),
        ({"P": np.array([1, 2, 3])}, {}, "dtype"),
    ]


def _bad_channel(rng):
    x = rng.standard_normal((2, 3, 4))
    return [
        ({"x": x}, {"eps": 0.0}, "eps"),
        ({"x": x[:, :, :0]}, {"eps": 1e-6}, "empty"),
        ({"x": x[0]}, {"eps": 1e-6}, "3 dimensions"),
    ]


def _bad_row(rng):
    P = rng.standard_normal((4, 3))
    return [
        ({"P": P}, {"eps": float("nan")}, "eps"),
        ({"P": P[0]}, {"eps": 1e-12}, "2 dimensions"),
    ]


OPINFOS = [
    OpInfo(name="column_normalize", kind="column_normalize", forward=column_normalize_forward,
           backward=column_normalize_backward, reference=column_normalize_reference,
           vectorized=column_normalize_vectorized,
           sample=_sample_column, diff_inputs=("M",), derivation="derivations/column_normalize.md",
           bad_inputs=_bad_column),
    OpInfo(name="frobenius_normalize", kind="frobenius_normalize",
           forward=frobenius_normalize_forward, backward=frobenius_normalize_backward,
           reference=frobenius_normalize_reference,
           vectorized=frobenius_normalize_vectorized, sample=_sample_frobenius, diff_inputs=("M",),
           derivation="derivations/frobenius_normalize.md", bad_inputs=_bad_frobenius,
           any_ndim=("M",)),
    OpInfo(name="frobenius_normalize_3d", kind="frobenius_normalize",
           forward=frobenius_normalize_forward, backward=frobenius_normalize_backward,
           reference=frobenius_normalize_reference,
           vectorized=frobenius_normalize_vectorized, sample=_sample_frobenius_3d,
           diff_inputs=("M",), derivation="derivations/frobenius_normalize.md", any_ndim=("M",)),
    OpInfo(name="plane_normalize", kind="plane_normalize", forward=plane_normalize_forward,
           backward=plane_normalize_backward, reference=plane_normalize_reference,
           vectorized=plane_normalize_vectorized,
           sample=_sample_plane, diff_inputs=("P",), derivation="derivations/plane_normalize.md",
           bad_inputs=_bad_plane, any_ndim=("P",)),
    OpInfo(name="plane_normalize_vector", kind="plane_normalize", forward=plane_normalize_forward,
           backward=plane_normalize_backward, reference=plane_normalize_reference,
           vectorized=plane_normalize_vectorized,
           sample=_sample_plane_vector, diff_inputs=("P",),
           derivation="derivations/plane_normalize.md", any_ndim=("P",)),
    OpInfo(name="channel_rms_normalize", kind="channel_rms_normalize",
           forward=channel_rms_normalize_forward, backward=channel_rms_normalize_backward,
           reference=channel_rms_normalize_reference,
           vectorized=channel_rms_normalize_vectorized, sample=_sample_channel, diff_inputs=("x",),
           derivation="derivations/channel_rms_normalize.md", bad_inputs=_bad_channel),
    OpInfo(name="row_normalize", kind="row_normalize", forward=row_normalize_forward,
           backward=row_normalize_backward, reference=row_normalize_reference,
           vectorized=row_normalize_vectorized,
           sample=_sample_row, diff_inputs=("P",), derivation="derivations/row_normalize.md",
           bad_inputs=_bad_row),
]
