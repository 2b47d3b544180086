"""The glyph renderer's bilinear sampler against scipy's map_coordinates (the oracle)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from refimpl.data.glyphs import bilinear_sample


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bilinear_sample_matches_map_coordinates(dtype):
    rng = np.random.default_rng(0)
    images = rng.random((5, 9, 7)).astype(dtype)
    n = 40
    idx = rng.integers(5, size=n)
    # points inside, on the edges, just outside and far outside
    rows = rng.uniform(-1.5, 9.5, size=(n, 3, 4))
    cols = rng.uniform(-1.5, 7.5, size=(n, 3, 4))
    rows[:, 0, 0], cols[:, 0, 0] = 8.0, 6.0          # the last pixel exactly
    rows[:, 0, 1], cols[:, 0, 1] = 0.0, 3.25         # the first row exactly
    out = bilinear_sample(images, idx, rows, cols)
    sel = np.broadcast_to(idx.reshape(n, 1, 1).astype(np.float64), rows.shape)
    ref = map_coordinates(images.astype(np.float64), np.stack([sel, rows, cols]), order=1,
                          mode="constant", cval=0.0, prefilter=False)
    assert out.shape == rows.shape
    np.testing.assert_allclose(out, ref, atol=1e-6 if dtype == np.float32 else 1e-12)
    assert (out[(rows < -1e-9) | (rows > 8 + 1e-9)] == 0).all()


def test_bilinear_sample_check_fails_when_perturbed():
    # The oracle comparison above is sensitive: a half-pixel offset is far outside its tolerance.
    rng = np.random.default_rng(1)
    images = rng.random((2, 6, 6))
    idx = np.array([0, 1])
    rows, cols = rng.uniform(1, 4, (2, 5)), rng.uniform(1, 4, (2, 5))
    sel = np.broadcast_to(idx.reshape(2, 1).astype(np.float64), rows.shape)
    ref = map_coordinates(images, np.stack([sel, rows, cols]), order=1, mode="constant", prefilter=False)
    assert np.abs(bilinear_sample(images, idx, rows + 0.5, cols) - ref).max() > 1e-3
