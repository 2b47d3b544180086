"""The update step at the paper preset: speed, FLOP/s and memory, hand vs autograd.

In one run, for float32 and float64 (B=128, layer_sizes [196, 128, 128, 128, 128, 32]):
- median time of the forward step, of its hand VJP, and of autograd's VJP of
  the same step (autograd applied to the independent transcription in
  refimpl/reference/update_step.py, its forward trace included);
- the analytic FLOP count of the step (matrix products and convolutions,
  2 per multiply-add; elementwise work not counted) and the achieved FLOP/s
  as a fraction of what numpy's matmul reaches in the same run;
- peak memory (tracemalloc) of the hand forward + VJP and of autograd's.
Targets: forward >= 50% of matmul FLOP/s; VJP <= 2x the forward;
hand VJP >= 3x faster than autograd's with <= half its peak memory.

    .venv/bin/python benchmarks/update_step.py [--repeats 5] [--dtypes float32 float64]
"""
import argparse
import gc
import os
import sys
import time
import tracemalloc

import autograd
import autograd.numpy as anp
import numpy as np

from refimpl.config import KERNEL, TOPD_KERNEL0, preset
from refimpl.params import init_phi, init_theta
from refimpl.reference import update_step as oracle
from refimpl.rule.update_step import update_step_forward, update_step_vjp


def step_flops(config) -> int:
    """Multiply-add FLOPs (x2) of one forward update step (derivations/update_step.md, cost)."""
    B, sizes = config.batch_size, config.layer_sizes
    D, Hd, Hs, T, R = config.delta_dims, config.h_dims, config.computeh_size, config.topd_size, config.readout_rank
    L = len(sizes) - 1
    K, K0 = KERNEL, TOPD_KERNEL0
    conv = lambda N, cin, cout, k=K: 2 * B * N * k * cin * cout
    lowrr = lambda na, nb: 2 * B * (na + nb) * Hd * R + 2 * B * R * na * nb
    flops = sum(2 * B * sizes[l - 1] * sizes[l] for l in range(1, L + 1))            # base model
    NL = sizes[L]
    flops += conv(NL, 1, T, K0) + conv(NL, T, B) + conv(NL, B, B) + conv(NL, B, T) + conv(NL, T, T) + conv(NL, T, D)
    for N in sizes:                                                                    # ComputeH, l = 0..L
        flops += conv(N, 13 + D, Hs) + 2 * conv(N, Hs, Hs) + conv(N, Hs, Hd)
    for l in range(1, L + 1):
        nin, nout = sizes[l - 1], sizes[l]
        flops += 2 * B * nout * Hd * D + 2 * nin * nout * B * D                        # error propagation
        flops += 3 * lowrr(nin, nout) + 2 * lowrr(nin, nin) + 2 * lowrr(nout, nout)    # seven readouts
        flops += 2 * B * nin * nout                                                    # P6
        flops += 2 * (2 * 2 * nin * nin * nout + 2 * 2 * nin * nout * nout)           # P7-P10, for W and V
        flops += 2 * B * nout * Hd                                                     # bias change
    return flops


def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def peak_memory(fn) -> int:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    result = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    return peak


def matmul_flops_per_second(dtype, repeats):
    rng = np.random.default_rng(0)
    best = 0.0
    for m, k, n in [(1024, 1024, 1024), (16384, 192, 64), (16384, 3 * 128, 128)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        t = median_time(lambda: a @ b, repeats)
        best = max(best, 2 * m * k * n / t)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtypes", nargs="*", default=["float32", "float64"])
    parser.add_argument("--preset", default="paper")
    args = parser.parse_args()
    config = preset(args.preset)
    flops = step_flops(config)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"preset {args.preset}: B={config.batch_size}, layer_sizes={list(config.layer_sizes)}; "
          f"{flops / 1e9:.2f} GFLOP per forward step; OPENBLAS_NUM_THREADS={threads}; python {sys.version.split()[0]}")
    rows = []
    for dtype_name in args.dtypes:
        dtype = np.dtype(dtype_name)
        rng = np.random.default_rng(0)
        theta = init_theta(config, rng, dtype)
        phi = init_phi(config, rng, dtype)
        x = rng.uniform(0, 1, (config.batch_size, config.layer_sizes[0])).astype(dtype)
        cot = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in phi.items()}
        peak_matmul = matmul_flops_per_second(dtype, args.repeats)

        forward = median_time(lambda: update_step_forward(theta, phi, x, config), args.repeats)
        _, _, cache = update_step_forward(theta, phi, x, config)
        vjp = median_time(lambda: update_step_vjp(cot, cache), args.repeats)
        cache = None      # free the step's caches before autograd's measurement

        def scalar(th, ph):
            out, _ = oracle.update_step(th, ph, x, config)
            return anp.sum(anp.array([anp.sum(out[k] * cot[k]) for k in sorted(out)]))
        grad = autograd.grad(scalar, argnum=(0, 1))
        autograd_time = median_time(lambda: grad(theta, phi), max(1, args.repeats // 2))

        hand_peak = peak_memory(lambda: update_step_vjp(cot, update_step_forward(theta, phi, x, config)[2]))
        autograd_peak = peak_memory(lambda: grad(theta, phi))
        rows.append((dtype_name, forward, vjp, autograd_time, flops / forward, peak_matmul, hand_peak, autograd_peak))

    print(f"\n{'dtype':<8}{'forward':>10}{'hand VJP':>10}{'autograd':>10}{'fwd GFLOP/s':>13}{'matmul':>9}"
          f"{'fwd/mm':>8}{'VJP/fwd':>9}{'ag/(f+VJP)':>12}{'hand MB':>9}{'ag MB':>8}{'mem ratio':>10}")
    for dtype_name, fwd, vjp, ag, fps, mm, hp, ap in rows:
        print(f"{dtype_name:<8}{fwd * 1e3:>8.1f}ms{vjp * 1e3:>8.1f}ms{ag * 1e3:>8.0f}ms{fps / 1e9:>13.2f}"
              f"{mm / 1e9:>9.1f}{fps / mm:>8.2f}{vjp / fwd:>9.2f}{ag / (fwd + vjp):>12.2f}"
              f"{hp / 2**20:>9.0f}{ap / 2**20:>8.0f}{hp / ap:>10.2f}")
    print("\ntargets: fwd/mm >= 0.50; VJP/fwd <= 2; ag/(f+VJP) >= 3 (autograd's time includes its forward trace,"
          " so it is compared with the hand forward + VJP); mem ratio <= 0.5")


if __name__ == "__main__":
    main()
