"""Oracle and registry entry for the ridge solve: SPEC 3 transcribed plainly.

A^T A and A^T Y are written as sums of per-row outer products and the
system is solved with a general LU solve (``anp.linalg.solve``), not a
Cholesky factorisation, so refimpl's factorisation and its closed-form VJP
are checked against autograd's own differentiation of a different solver.
"""
import autograd.numpy as anp
import numpy as np

from refimpl.ops.ridge import ridge_solve_backward, ridge_solve_forward
from refimpl.reference.registry import OpInfo, Sample


def ridge_solve_reference(A, Y, *, ridge):
    n, F = A.shape
    gram = [anp.outer(A[b], A[b]) for b in range(n)]
    cross = [anp.outer(A[b], Y[b]) for b in range(n)]
    M = anp.sum(anp.stack(gram), axis=0) + ridge * anp.eye(F)
    rhs = anp.sum(anp.stack(cross), axis=0)
    return anp.linalg.solve(M, rhs)


def ridge_solve_vectorized(A, Y, *, ridge):
    """The same formula in vectorised autograd.numpy, for the benchmark only."""
    return anp.linalg.solve(anp.dot(A.T, A) + ridge * anp.eye(A.shape[1]), anp.dot(A.T, Y))


def _sample(rng, dtype, size):
    # The meta-objective's regime (SPEC 6): A = [relu features, 1], ridge 0.1.
    # n = B + 3 rows against F = N + 1 columns covers both n > F and n < F.
    n = size.B + 3
    feats = np.maximum(rng.standard_normal((n, size.N)) * 1.5 + 0.3, 0.0)
    A = np.concatenate([feats, np.ones((n, 1))], axis=1)
    Y = rng.standard_normal((n, size.C))
    return Sample(inputs={"A": A.astype(dtype), "Y": Y.astype(dtype)}, attrs={"ridge": 0.1})


def _bad_inputs(rng):
    A = rng.standard_normal((6, 3))
    Y = rng.standard_normal((6, 2))
    return [
        ({"A": A, "Y": Y[:5]}, {"ridge": 0.1}, "'Y'"),                     # row mismatch
        ({"A": A, "Y": Y[:, 0]}, {"ridge": 0.1}, "'Y'"),                   # Y 1-D
        ({"A": A, "Y": Y.astype(np.float32)}, {"ridge": 0.1}, "dtype"),
        ({"A": A, "Y": Y}, {"ridge": 0.0}, "ridge"),
        ({"A": A, "Y": Y}, {"ridge": -0.1}, "ridge"),
        ({"A": A, "Y": Y}, {"ridge": float("nan")}, "ridge"),
        ({"A": A[:, :0], "Y": Y}, {"ridge": 0.1}, "'A'"),
    ]


OPINFOS = [
    OpInfo(name="ridge_solve", kind="ridge_solve", forward=ridge_solve_forward,
           backward=ridge_solve_backward, reference=ridge_solve_reference, sample=_sample,
           diff_inputs=("A", "Y"), output="C", derivation="derivations/ridge_solve.md",
           bad_inputs=_bad_inputs, vectorized=ridge_solve_vectorized),
]
