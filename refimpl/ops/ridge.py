"""Ridge regression solve (SPEC 3, "RidgeSolve"; used by the meta-objective, SPEC 6).

    C = (A^T A + ridge I)^{-1} A^T Y

solved through a Cholesky factorisation of M = A^T A + ridge I (never an
explicit inverse). The penalty covers every column of A, including the
ones-column the meta-objective appends (SPEC decision). Derivation and
conditioning: derivations/ridge_solve.md.

Every BLAS/LAPACK call here goes through SciPy (``get_blas_funcs`` gemm/syrk,
``cho_factor``/``cho_solve``), none through NumPy's ``@``: the NumPy and SciPy
wheels each bundle their own multi-threaded OpenBLAS, and alternating
between the two thread pools costs milliseconds per switch on a busy
machine (scipy/scipy#15050; benchmarks/RESULTS.md, "Ridge solve: every BLAS
call through SciPy").
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg

from refimpl.validate import check_array, check_positive, check_same_dtype, check_shape, fail

OP = "ridge_solve"


class RidgeSolveCache(NamedTuple):
    A: np.ndarray          # [n, F]
    Y: np.ndarray          # [n, c]
    C: np.ndarray          # [F, c], the solution
    factor: tuple          # (lower Cholesky factor L [F, F] of M, True), for scipy.linalg.cho_solve


class RidgeSolveGrads(NamedTuple):
    A: np.ndarray
    Y: np.ndarray


def ridge_solve_forward(A: np.ndarray, Y: np.ndarray, *, ridge: float) -> tuple[np.ndarray, RidgeSolveCache]:
    """RidgeSolve forward (derivations/ridge_solve.md eq. 1-2).

    A: [n, F] features (n rows, e.g. n_label; F = N^L + 1 with the ones-column).
    Y: [n, c] targets (c = n_cls + n_reg).
    ridge: the penalty lambda > 0 (config ``ridge``, 0.1).
    Returns (C [F, c], RidgeSolveCache).
    """
    check_array(OP, "A", A, 2)
    check_array(OP, "Y", Y, 2)
    if A.shape[0] < 1 or A.shape[1] < 1:
        fail(OP, f"argument 'A' must have at least one row and one column, got shape {A.shape}")
    check_shape(OP, "Y", Y, (A.shape[0], Y.shape[1]), f"one row per row of A {A.shape}")
    check_same_dtype(OP, A=A, Y=Y)
    ridge = check_positive(OP, "ridge", ridge)

    gemm, syrk = scipy.linalg.get_blas_funcs(("gemm", "syrk"), (A,))
    # Lower triangle of A^T A [F, F] (A.T is Fortran-ordered: no copy); the
    # upper triangle is never read (cho_factor(lower=True)).
    M = syrk(1.0, A.T, lower=1)
    M.flat[:: M.shape[0] + 1] += ridge                      # + ridge I (eq. 1)
    try:
        factor = scipy.linalg.cho_factor(M, lower=True, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        fail(OP, f"A^T A + ridge I is not numerically positive definite (A {A.shape}, "
                 f"ridge {ridge!r}, max |A| {float(np.max(np.abs(A))):.3g})")
    C = scipy.linalg.cho_solve(factor, gemm(1.0, A.T, Y), check_finite=False)   # eq. 2
    return C, RidgeSolveCache(A, Y, C, factor)


def ridge_solve_backward(dC: np.ndarray, cache: RidgeSolveCache) -> RidgeSolveGrads:
    """VJP of ridge_solve_forward: grads for A [n, F] and Y [n, c]."""
    A, Y, C, factor = cache
    gemm = scipy.linalg.get_blas_funcs("gemm", (A,))
    dC = np.asarray(dC).astype(C.dtype, copy=False)
    G = scipy.linalg.cho_solve(factor, dC, check_finite=False)   # derivations/ridge_solve.md eq. 5
    dY = gemm(1.0, A, G)                                        # eq. 6: A G
    residual = gemm(-1.0, A, C, beta=1.0, c=Y)                  # Y - A C (Y is copied, not overwritten)
    dA = gemm(1.0, residual, G, trans_b=1)                      # eq. 8: (Y - A C) G^T
    dA = gemm(-1.0, dY, C, beta=1.0, c=dA, trans_b=1, overwrite_c=1)   #      - dY C^T
    return RidgeSolveGrads(dA, dY)
