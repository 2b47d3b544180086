"""Where the time of one update step goes: per stage and per operator module (paper preset).

One thread (BLAS limited), CPU time. Stage times: the stage functions that
refimpl/rule/update_step.py calls are wrapped with timers (forward and VJP
separately). Module times: cProfile over ``--repeats`` forward + VJP pairs;
a refimpl function's own time plus the time of every non-refimpl function
(numpy, BLAS) it calls directly is charged to its module. Runs on whatever
``refimpl`` is first on ``sys.path`` (``PYTHONPATH=other/tree`` profiles
another revision).

    .venv/bin/python benchmarks/profile_step.py [--dtype float32] [--repeats 3]
"""
import argparse
import cProfile
import pstats
import time
from collections import defaultdict

import numpy as np
from threadpoolctl import threadpool_limits

import refimpl
import refimpl.rule.update_step as us
from refimpl.config import preset
from refimpl.params import init_phi, init_theta

STAGES = {
    "base model": ("base_forward_unchecked", "base_backward"),
    "TopD": ("topd_forward_unchecked", "topd_backward"),
    "ComputeH": ("compute_h_forward_unchecked", "compute_h_backward"),
    "error propagation": ("error_prop_forward_unchecked", "error_prop_backward"),
    "shared planes": ("shared_planes_forward_unchecked", "shared_planes_backward"),
    "matrix update": ("matrix_update_forward_unchecked", "matrix_update_backward"),
    "bias update": ("bias_update_forward_unchecked", "bias_update_backward"),
}


def wrap_stages(times) -> dict:
    """Replace the stage functions in refimpl.rule.update_step by timed ones; returns the originals."""
    originals = {}
    for stage, names in STAGES.items():
        for direction, name in zip(("forward", "VJP"), names):
            fn = originals[name] = getattr(us, name)

            def timed(*a, _fn=fn, _key=(stage, direction), **k):
                start = time.process_time()
                try:
                    return _fn(*a, **k)
                finally:
                    times[_key] += time.process_time() - start
            setattr(us, name, timed)
    return originals


def module_times(profile) -> dict:
    root = refimpl.__file__.rsplit("/", 1)[0] + "/"
    stats = pstats.Stats(profile).stats
    own = defaultdict(float)
    for (path, _, _), (_, _, tt, _ct, callers) in stats.items():
        if path.startswith(root):
            own[path[len(root):]] += tt
            continue
        for (cpath, _, _), (_, _, _ctt, cct) in callers.items():
            if cpath.startswith(root):
                own[cpath[len(root):]] += cct
    return own


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="paper")
    args = parser.parse_args()
    config = preset(args.preset)
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    theta, phi = init_theta(config, rng, dtype), init_phi(config, rng, dtype)
    x = rng.uniform(0, 1, (config.batch_size, config.layer_sizes[0])).astype(dtype)
    cot = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in phi.items()}
    times = defaultdict(float)
    with threadpool_limits(1, "blas"):
        us.update_step_vjp(cot, us.update_step_forward(theta, phi, x, config)[2])      # warm up
        originals = wrap_stages(times)
        total = {"forward": 0.0, "VJP": 0.0}
        for _ in range(args.repeats):
            start = time.process_time()
            cache = us.update_step_forward(theta, phi, x, config)[2]
            total["forward"] += time.process_time() - start
            start = time.process_time()
            us.update_step_vjp(cot, cache)
            total["VJP"] += time.process_time() - start
            del cache
        for name, fn in originals.items():
            setattr(us, name, fn)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.repeats):
            us.update_step_vjp(cot, us.update_step_forward(theta, phi, x, config)[2])
        profile.disable()
    r = args.repeats
    print(f"refimpl from {refimpl.__file__}; preset {args.preset}, {args.dtype}, one thread, CPU ms per step "
          f"(mean of {r})")
    print(f"\n{'stage':<20}{'forward':>10}{'VJP':>10}")
    for stage in STAGES:
        print(f"{stage:<20}{times[(stage, 'forward')] / r * 1e3:>10.1f}{times[(stage, 'VJP')] / r * 1e3:>10.1f}")
    rest = {d: total[d] - sum(times[(s, d)] for s in STAGES) for d in total}
    print(f"{'rest (EMA, glue)':<20}{rest['forward'] / r * 1e3:>10.1f}{rest['VJP'] / r * 1e3:>10.1f}")
    print(f"{'total':<20}{total['forward'] / r * 1e3:>10.1f}{total['VJP'] / r * 1e3:>10.1f}")
    own = module_times(profile)
    whole = sum(own.values())
    print(f"\n{'module (own time + numpy it calls)':<40}{'ms/step':>10}{'share':>8}   (under cProfile)")
    for path, t in sorted(own.items(), key=lambda kv: -kv[1])[:14]:
        print(f"{path:<40}{t / r * 1e3:>10.1f}{t / whole:>8.0%}")


if __name__ == "__main__":
    main()
