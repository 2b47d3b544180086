"""Oracles and registry entries for the structural pieces of the planes (SPEC 5).

Plain transcriptions: every output entry written out from its definition
with explicit loops, and relu as a comparison, so nothing is shared with the
vectorised code in refimpl/ops/planes.py.
"""
import math

import autograd.numpy as anp
import numpy as np

from refimpl.ops.planes import (
    bias_centre_backward,
    bias_centre_forward,
    cross_cov_backward,
    cross_cov_forward,
    orth_backward,
    orth_forward,
    sym_zero_diag_backward,
    sym_zero_diag_forward,
)
from refimpl.reference.registry import OpInfo, Sample


def _relu(s):
    """relu of a scalar, relu'(0) = 0."""
    return s if s > 0 else 0.0 * s


# --------------------------------------------------------------------------- oracles

def sym_zero_diag_reference(S):
    n = S.shape[0]
    rows = []
    for i in range(n):
        row = []
        for j in range(n):
            if i == j:
                row.append(0.0 * S[i, j])
            else:
                row.append((S[i, j] + S[j, i]) / math.sqrt(2.0))
        rows.append(anp.stack(row))
    return anp.stack(rows)


def orth_reference(dM, Mf):
    n_in, n_out = dM.shape
    ip = 0.0
    for i in range(n_in):
        for j in range(n_out):
            ip = ip + dM[i, j] * Mf[i, j]
    return dM + Mf * _relu(-ip)


def bias_centre_reference(db):
    n = db.shape[0]
    mean = 0.0
    for j in range(n):
        mean = mean + db[j]
    mean = mean / n
    return anp.stack([db[j] - _relu(mean) for j in range(n)])


def cross_cov_reference(xa, xb):
    B, n_in = xa.shape
    n_out = xb.shape[1]
    mean_a = [sum(xa[b, i] for b in range(B)) / B for i in range(n_in)]
    mean_b = [sum(xb[b, j] for b in range(B)) / B for j in range(n_out)]
    rows = []
    for i in range(n_in):
        row = []
        for j in range(n_out):
            acc = 0.0
            for b in range(B):
                acc = acc + (xa[b, i] - mean_a[i]) * (xb[b, j] - mean_b[j])
            row.append(acc / B)
        rows.append(anp.stack(row))
    return anp.stack(rows)


# --------------------------------------------------------------------------- vectorised forms

# The same formulas in vectorised autograd.numpy, for the benchmark only
# (autograd timed fairly); the tests use the looped oracles above.

def sym_zero_diag_vectorized(S):
    return (S + S.T) / math.sqrt(2.0) * (1.0 - np.eye(S.shape[0], dtype=S.dtype))


def orth_vectorized(dM, Mf):
    ip = anp.sum(dM * Mf)
    return dM + Mf * _relu(-ip)            # relu'(0) = 0 as in the oracle (anp.maximum would give 1/2)


def bias_centre_vectorized(db):
    return db - _relu(anp.mean(db))


def cross_cov_vectorized(xa, xb):
    ca = xa - anp.mean(xa, axis=0, keepdims=True)
    cb = xb - anp.mean(xb, axis=0, keepdims=True)
    return anp.dot(ca.T, cb) / xa.shape[0]


# --------------------------------------------------------------------------- samples

def _sample_sym(rng, dtype, size):
    return Sample(inputs={"S": rng.standard_normal((size.N, size.N)).astype(dtype)})


def _sample_orth(rng, dtype, size, sign=None):
    """dM with <dM, Mf> = s * a, s = +-1 (random unless given), a in [0.3, 1.5]."""
    M = rng.standard_normal((size.N, size.Nout)) * 0.01
    Mf = M / np.sqrt(np.sum(M * M))
    dM = rng.standard_normal((size.N, size.Nout))
    dM = dM - np.sum(dM * Mf) * Mf            # orthogonal to Mf
    s = sign if sign is not None else rng.choice([-1.0, 1.0])
    dM = dM + s * rng.uniform(0.3, 1.5) * Mf
    return Sample(inputs={"dM": dM.astype(dtype), "Mf": Mf.astype(dtype)})


def _sample_orth_shrinking(rng, dtype, size):
    return _sample_orth(rng, dtype, size, sign=-1.0)


def _sample_orth_disjoint(rng, dtype, size):
    """dM and Mf with disjoint supports, so <dM, Mf> is exactly 0 in any dtype and summation order
    (every product is a signed zero): the kink of the relu, where relu'(0) = 0 leaves the correction
    inactive. A 1 x 1 matrix has no room for two supports: dM is 0 there."""
    n = size.N * size.Nout
    cells = rng.permutation(n)
    on_mf = np.zeros(n, dtype=bool)
    on_mf[cells[: (n + 1) // 2]] = True
    Mf = np.where(on_mf, rng.standard_normal(n), 0.0).reshape(size.N, size.Nout)
    Mf = Mf / np.sqrt(np.sum(Mf * Mf))
    dM = np.where(on_mf, 0.0, rng.standard_normal(n)).reshape(size.N, size.Nout)
    return Sample(inputs={"dM": dM.astype(dtype), "Mf": Mf.astype(dtype)})


def _sample_bias(rng, dtype, size, sign=None):
    """db with mean s * a, s = +-1 (random unless given), a in [0.05, 0.5]."""
    db = rng.standard_normal(size.N) * 0.5
    s = sign if sign is not None else rng.choice([-1.0, 1.0])
    db = db - db.mean() + s * rng.uniform(0.05, 0.5)
    return Sample(inputs={"db": db.astype(dtype)})


def _sample_bias_rising(rng, dtype, size):
    return _sample_bias(rng, dtype, size, sign=1.0)


def _sample_cross_cov(rng, dtype, size):
    # Offsets so that the centring matters (activations after relu are >= 0).
    xa = rng.standard_normal((size.B, size.N)) + 0.7
    xb = rng.standard_normal((size.B, size.Nout)) * 0.5 + 0.3
    return Sample(inputs={"xa": xa.astype(dtype), "xb": xb.astype(dtype)})


# --------------------------------------------------------------------------- bad inputs

def _bad_sym(rng):
    return [({"S": rng.standard_normal((3, 4))}, {}, "square")]


def _bad_orth(rng):
    dM = rng.standard_normal((4, 3))
    return [
        ({"dM": dM, "Mf": dM.T.copy()}, {}, "(4, 3)"),
        ({"dM": dM, "Mf": dM[:, :2]}, {}, "Mf"),
        ({"dM": dM, "Mf": dM.astype(np.float32)}, {}, "dtype"),
    ]


def _bad_bias(rng):
    return [
        ({"db": np.zeros(0)}, {}, "empty"),
        ({"db": rng.standard_normal((3, 1))}, {}, "1 dimensions"),
    ]


def _bad_cross_cov(rng):
    xa = rng.standard_normal((5, 4))
    return [
        ({"xa": xa, "xb": rng.standard_normal((4, 3))}, {}, "batch"),
        ({"xa": xa[:0], "xb": rng.standard_normal((0, 3))}, {}, "non-empty"),
        ({"xa": xa, "xb": rng.standard_normal((5, 3)).astype(np.float32)}, {}, "dtype"),
    ]


OPINFOS = [
    OpInfo(name="sym_zero_diag", kind="sym_zero_diag", forward=sym_zero_diag_forward,
           backward=sym_zero_diag_backward, reference=sym_zero_diag_reference,
           vectorized=sym_zero_diag_vectorized,
           sample=_sample_sym, diff_inputs=("S",), derivation="derivations/sym_zero_diag.md",
           bad_inputs=_bad_sym),
    OpInfo(name="orth", kind="orth", forward=orth_forward, backward=orth_backward,
           reference=orth_reference,
           vectorized=orth_vectorized, sample=_sample_orth, diff_inputs=("dM", "Mf"),
           derivation="derivations/orth.md", bad_inputs=_bad_orth),
    # The default-size sample of "orth" may land on either branch; this entry
    # pins the active one (ip < 0) so test_perturbed_backward sees it too.
    OpInfo(name="orth_shrinking", kind="orth", forward=orth_forward, backward=orth_backward,
           reference=orth_reference,
           vectorized=orth_vectorized, sample=_sample_orth_shrinking, diff_inputs=("dM", "Mf"),
           derivation="derivations/orth.md"),
    # ip = 0 exactly: the inactive branch at the kink (derivations/orth.md eq. 4).
    OpInfo(name="orth_disjoint", kind="orth", forward=orth_forward, backward=orth_backward,
           reference=orth_reference,
           vectorized=orth_vectorized, sample=_sample_orth_disjoint, diff_inputs=("dM", "Mf"),
           derivation="derivations/orth.md"),
    OpInfo(name="bias_centre", kind="bias_centre", forward=bias_centre_forward,
           backward=bias_centre_backward, reference=bias_centre_reference,
           vectorized=bias_centre_vectorized,
           sample=_sample_bias, diff_inputs=("db",), derivation="derivations/bias_centre.md",
           bad_inputs=_bad_bias),
    OpInfo(name="bias_centre_rising", kind="bias_centre", forward=bias_centre_forward,
           backward=bias_centre_backward, reference=bias_centre_reference,
           vectorized=bias_centre_vectorized,
           sample=_sample_bias_rising, diff_inputs=("db",), derivation="derivations/bias_centre.md"),
    OpInfo(name="cross_cov", kind="cross_cov", forward=cross_cov_forward,
           backward=cross_cov_backward, reference=cross_cov_reference,
           vectorized=cross_cov_vectorized, sample=_sample_cross_cov,
           diff_inputs=("xa", "xb"), derivation="derivations/cross_cov.md",
           bad_inputs=_bad_cross_cov),
]
