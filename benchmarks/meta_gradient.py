"""The meta-gradient of a truncated unroll: hand reverse pass vs autograd, and memory in U.

In one run:
1. the hand meta-gradient (refimpl.meta.unroll.meta_gradient) against autograd's
   gradient of the same unroll (autograd applied to the independent
   transcription in refimpl/reference/meta_objective.py), at the paper preset,
   U = 4, float32 and float64: time, peak memory (tracemalloc) and their
   ratios, and the relative error between the two gradients;
2. the hand meta-gradient's peak memory at U = 2, 8 and 15 (target:
   peak(15) / peak(2) <= 1.3: steps are rematerialised, only the phi copies grow);
3. meta-steps per second of the `small` training preset (refimpl.train).

BLAS is limited to one thread (as the trainer does); the paper sizes use
n_cls = 10 classes x 10 shots per labeled batch and n_eval = 5 pairs.

    .venv/bin/python benchmarks/meta_gradient.py [--skip-autograd] [--small-steps 5]
"""
import argparse
import gc
import time
import tracemalloc

import autograd
import numpy as np

from refimpl.config import preset
from refimpl.params import init_phi, init_theta
from refimpl.reference import meta_objective as oracle
from refimpl.reference.gradcheck import rel_error
from refimpl.train import init_state, meta_step, train_preset

try:
    from refimpl.meta.unroll import UnrollBatches, meta_gradient
    from refimpl.runtime import blas_single_thread
except ImportError:   # a revision from before refimpl/meta/ (benchmarks/against_revision.py imports this file there)
    from refimpl.model.unroll import UnrollBatches, meta_gradient
    from refimpl.train.trainer import blas_single_thread

N_CLS, SHOTS = 10, 10


def make_unroll(config, U, dtype, seed=0):
    rng = np.random.default_rng(seed)
    theta = init_theta(config, rng, dtype)
    phi = init_phi(config, rng, dtype)
    B, N0, E, n = config.batch_size, config.layer_sizes[0], config.n_eval, N_CLS * SHOTS
    labels = lambda: np.eye(N_CLS)[rng.integers(0, N_CLS, (U, E, n))].astype(dtype)
    batches = UnrollBatches(
        x=rng.uniform(0, 1, (U, B, N0)).astype(dtype),
        x_a=rng.uniform(0, 1, (U, E, n, N0)).astype(dtype),
        x_b=rng.uniform(0, 1, (U, E, n, N0)).astype(dtype),
        y_a=labels(), y_b=labels())
    return theta, phi, batches


def measure(fn):
    """(seconds, peak bytes, result) of one call, peak by tracemalloc (which slows numpy little)."""
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-autograd", action="store_true")
    parser.add_argument("--small-steps", type=int, default=5)
    parser.add_argument("--preset", default="paper")
    args = parser.parse_args()
    config = preset(args.preset)
    print(f"preset {args.preset}: B={config.batch_size}, layer_sizes={list(config.layer_sizes)}, "
          f"n_eval={config.n_eval}, labeled batches {N_CLS}x{SHOTS}; BLAS single-threaded")
    with blas_single_thread():
        if not args.skip_autograd:
            print("\n1. hand vs autograd meta-gradient, U = 4")
            print(f"{'dtype':<8}{'hand s':>9}{'autograd s':>12}{'time ratio':>12}{'hand MB':>9}{'ag MB':>8}"
                  f"{'mem ratio':>11}{'max rel err':>13}")
            for dtype in (np.float32, np.float64):
                theta, phi, batches = make_unroll(config, 4, dtype)
                meta_gradient(theta, phi, batches, config, n_cls=N_CLS)          # warm up
                hand_s, hand_peak, hand = measure(lambda: meta_gradient(theta, phi, batches, config, n_cls=N_CLS))

                def J(th):
                    return oracle.unroll(th, phi, batches.x, batches.x_a, batches.y_a, batches.x_b,
                                         batches.y_b, config)[0]
                ag_s, ag_peak, ag = measure(lambda: autograd.grad(J)(theta))
                err = max(rel_error(hand.dtheta[k], ag[k]) for k in theta)
                print(f"{np.dtype(dtype).name:<8}{hand_s:>9.2f}{ag_s:>12.2f}{ag_s / hand_s:>12.2f}"
                      f"{hand_peak / 2**20:>9.0f}{ag_peak / 2**20:>8.0f}{hand_peak / ag_peak:>11.2f}{err:>13.1e}")
                del hand, ag

        print("\n2. hand meta-gradient peak memory in U (float32)")
        peaks = {}
        for U in (2, 8, 15):
            theta, phi, batches = make_unroll(config, U, np.float32)
            seconds, peaks[U], _ = measure(lambda: meta_gradient(theta, phi, batches, config, n_cls=N_CLS))
            print(f"  U = {U:>2}: peak {peaks[U] / 2**20:7.1f} MB, {seconds:6.2f} s ({seconds / U:.2f} s per step)")
        print(f"  peak(15) / peak(2) = {peaks[15] / peaks[2]:.3f}   (target <= 1.3)")

        print("\n3. meta-steps per second, `small` training preset")
        tc = train_preset("small")
        state = init_state(tc)
        state, _ = meta_step(state, tc)                                           # warm up (glyph cache)
        start = time.perf_counter()
        for _ in range(args.small_steps):
            state, _ = meta_step(state, tc)
        per_step = (time.perf_counter() - start) / args.small_steps
        print(f"  {1 / per_step:.2f} meta-steps/s ({per_step:.2f} s per meta-step, "
              f"{tc.tasks_per_step} tasks per meta-step, mean of {args.small_steps})")


if __name__ == "__main__":
    main()
