"""The measurements behind small implementation choices that code comments name (one run, one thread).

- relu as ``np.maximum(z, 0)`` against ``np.where(z > 0, z, 0)`` (refimpl/ops/activations.py);
- glyph warping as four gathers (``refimpl.data.glyphs.bilinear_sample``) against
  ``scipy.ndimage.map_coordinates(order=1)`` image by image (refimpl/data/glyphs.py);
- one im2col copy of a convolution input at the paper size, the cost the plain convolution's
  backward pays for keeping m instead of its im2col columns (refimpl/ops/conv.py);
- the float32 tap form of the convolution against im2col for several input channel counts C
  (``refimpl.ops.conv.uses_tap_form``: C >= Cout / 2).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/design_choices.py [--repeats 20]

Prints medians in ms and the ratios; results: benchmarks/RESULTS.md, "Small implementation choices".
"""
import argparse
import os

import numpy as np
import scipy.ndimage
from threadpoolctl import threadpool_limits
from update_step import median_time

from refimpl.data.glyphs import bilinear_sample
from refimpl.ops.conv import _im2col, conv_im2col, conv_taps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    r = args.repeats

    def median_ms(fn, repeats):
        return 1e3 * median_time(fn, repeats)

    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"one BLAS thread, median of {r}; load average {load}\n")
    print("relu, float32                    np.maximum     np.where   where/maximum")
    for shape in ((128, 128), (16384, 64)):
        z = rng.standard_normal(shape).astype(np.float32)
        a = median_ms(lambda: np.maximum(z, 0), r)
        b = median_ms(lambda: np.where(z > 0, z, 0), r)
        print(f"  {str(list(shape)):<28}{a:>10.3f}ms {b:>10.3f}ms {b / a:>12.1f}")

    m, side, n = 40, 14, 200      # a glyph bank, the small preset's image side, a meta-batch of warped images
    images = rng.uniform(0, 1, (m, side, side)).astype(np.float32)
    idx = rng.integers(0, m, n)
    rows = rng.uniform(-1, side, (n, side, side))
    cols = rng.uniform(-1, side, (n, side, side))
    gathers = median_ms(lambda: bilinear_sample(images, idx, rows, cols), r)
    ndimage = median_ms(lambda: [scipy.ndimage.map_coordinates(images[i], [rows[j], cols[j]], order=1,
                                                               mode="constant", cval=0.0)
                                 for j, i in enumerate(idx)], r)
    print(f"\nglyph warping, {n} images {side}x{side}: four gathers {gathers:.2f}ms, "
          f"map_coordinates {ndimage:.2f}ms, ratio {ndimage / gathers:.1f}")

    x = rng.standard_normal((128, 128, 64)).astype(np.float32)     # paper preset [B, N, C], K = 3
    copy = median_ms(lambda: _im2col(x, 3, 1), r)
    print(f"\nim2col of a paper-size conv input [128, 128, 64], K = 3, float32: {copy:.2f}ms")

    print("\nconv forward along the units, [128, 128, C] -> Cout = 64, K = 3, float32: tap form / im2col")
    for C in (4, 8, 16, 32, 64):
        m = rng.standard_normal((128, 128, C)).astype(np.float32)
        w = rng.standard_normal((3, C, 64)).astype(np.float32)
        taps = median_ms(lambda: conv_taps(m, w, None, 1), r)
        plain = median_ms(lambda: conv_im2col(m, w, None, 1), r)
        print(f"  C = {C:>2}: taps {taps:6.2f}ms, im2col {plain:6.2f}ms, ratio {taps / plain:.2f}")


if __name__ == "__main__":
    with threadpool_limits(limits=1, user_api="blas"):
        main()
