"""The one error metric of the project (SPEC 10), used by the gradient checks, golden export,
golden check and the port verifier alike. NumPy only."""
from __future__ import annotations

import numpy as np


def rel_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """SPEC 10 normwise relative error: max|a - r| / max(max|r|, 1e-300); 0 for empty arrays.

    A NaN in ``actual`` gives NaN (which fails every ``err <= limit`` comparison).
    """
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if actual.shape != reference.shape:
        raise ValueError(f"shape mismatch: {actual.shape} vs reference {reference.shape}")
    if actual.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(reference))), 1e-300)
    return float(np.max(np.abs(actual - reference))) / scale
