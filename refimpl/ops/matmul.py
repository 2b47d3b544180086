"""Matrix product, 2-D only (planes P7-P10, error propagation, the meta-objective's readout).

Derivation: derivations/matmul.md.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refimpl.validate import check_array, check_same_dtype, check_shape


class MatmulCache(NamedTuple):
    a: np.ndarray
    b: np.ndarray


class MatmulGrads(NamedTuple):
    a: np.ndarray
    b: np.ndarray


def matmul_forward(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, MatmulCache]:
    """Matrix product, 2-D only, no broadcasting.

        y[i, k] = sum_j a[i, j] b[j, k]

    a: [N, C], b: [C, D] (any sizes whose inner dimensions agree).
    Returns (y [N, D], MatmulCache).
    """
    op = "matmul"
    check_array(op, "a", a, 2)
    check_array(op, "b", b, 2)
    check_shape(op, "b", b, (a.shape[1], b.shape[1]),
                f"its rows must match the columns of a {a.shape}")
    check_same_dtype(op, a=a, b=b)
    return a @ b, MatmulCache(a, b)


def matmul_backward(dy: np.ndarray, cache: MatmulCache) -> MatmulGrads:
    """VJP of matmul_forward."""
    a, b = cache
    # derivations/matmul.md eq. 2
    return MatmulGrads(dy @ b.T, a.T @ dy)
