"""This tree against another revision of refimpl, measured in one run (targets of the fast step).

The other revision is checked out with ``git worktree add`` into a temporary
directory (removed at the end); every measurement runs in a fresh
subprocess with that tree or this one first on ``sys.path``, BLAS limited
to one thread, timed in CPU time (``time.process_time``) so that other
processes on a shared machine disturb it less; the two trees alternate,
``--rounds`` times, and the minimum is kept. Measured, at the paper preset
in float32 unless said otherwise:

- the forward update step, its hand VJP, and numpy's matmul FLOP/s in the
  same subprocess (forward FLOP/s as a fraction of it; FLOPs counted as in
  benchmarks/update_step.py);
- peak memory (tracemalloc) of one forward + VJP;
- the meta-gradient of a U = 4 unroll;
- meta-steps per CPU second of the `small` training preset (same seed,
  same steps in both trees);
- the bytes one forward moves (benchmarks/bytes_moved.py: every numpy call's
  operands and results) and the machine's copy bandwidth (a 256 MB
  ``np.copyto``, read + write counted), measured in the same subprocess as
  the forward: the forward's bandwidth as a fraction of it;
- bit identity: a digest of theta, Adam and every task's phi and generator
  state after ``--bits-steps`` meta-steps of the `tiny` and the `small`
  preset, in each tree (the two must be equal).

Every measurement prints the load average beside it (the machine is shared).

Targets: small preset >= 2x the other revision's meta-steps/s, bit-identical;
VJP <= 2x forward; aims: forward >= 1.6x faster, meta-gradient U = 4 <= 0.7x
the time.

    .venv/bin/python benchmarks/against_revision.py [--rev 5ca445c] [--rounds 2] [--json out.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MEASURE = r'''
import json, sys, time, tracemalloc, gc
import numpy as np
from threadpoolctl import threadpool_limits
sys.path.insert(0, {bench!r})
from update_step import step_flops
import refimpl
assert refimpl.__file__.startswith({tree!r}), refimpl.__file__
from refimpl.config import preset
from refimpl.params import init_phi, init_theta
from refimpl.rule.update_step import update_step_forward, update_step_vjp
what = {what!r}
out = {{}}

def best(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.process_time(); fn(); times.append(time.process_time() - t)
    return min(times)

with threadpool_limits(1, "blas"):
    if what == "step":
        config = preset("paper"); dtype = np.float32
        rng = np.random.default_rng(0)
        theta = init_theta(config, rng, dtype); phi = init_phi(config, rng, dtype)
        x = rng.uniform(0, 1, (config.batch_size, config.layer_sizes[0])).astype(dtype)
        cot = {{k: rng.standard_normal(v.shape).astype(dtype) for k, v in phi.items()}}
        out["forward"] = best(lambda: update_step_forward(theta, phi, x, config), 5)
        cache = update_step_forward(theta, phi, x, config)[2]
        out["vjp"] = best(lambda: update_step_vjp(cot, cache), 5)
        del cache
        mm = 0.0
        for m, k, n in [(1024, 1024, 1024), (16384, 192, 64), (16384, 384, 128)]:
            a = rng.standard_normal((m, k)).astype(dtype); b = rng.standard_normal((k, n)).astype(dtype)
            mm = max(mm, 2 * m * k * n / best(lambda: a @ b, 5))
        out["matmul_flops"] = mm
        out["step_flops"] = step_flops(config)
        src = np.ones(2**26, np.float32); dst = np.empty_like(src)
        out["copy_bandwidth"] = 2 * src.nbytes / best(lambda: np.copyto(dst, src), 5)
        del src, dst
        gc.collect(); tracemalloc.start()
        update_step_vjp(cot, update_step_forward(theta, phi, x, config)[2])
        out["peak_bytes"] = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
    elif what == "bytes":
        from bytes_moved import count_bytes
        config = preset("paper"); dtype = np.float32
        rng = np.random.default_rng(0)
        theta = init_theta(config, rng, dtype); phi = init_phi(config, rng, dtype)
        x = rng.uniform(0, 1, (config.batch_size, config.layer_sizes[0])).astype(dtype)
        out["forward_bytes"] = count_bytes(lambda th, ph, xx: update_step_forward(th, ph, xx, config), theta, phi, x)
    elif what == "bits":
        import hashlib
        from refimpl.train import init_state, meta_step, train_preset
        for name in ("tiny", "small"):
            tc = train_preset(name); state = init_state(tc)
            for _ in range({bits_steps}):
                state, _ = meta_step(state, tc)
            h = hashlib.sha256()
            for d in (state.theta, state.adam.m, state.adam.v):
                for k in sorted(d):
                    h.update(d[k].tobytes())
            for ts in state.tasks:
                for k in sorted(ts.phi):
                    h.update(ts.phi[k].tobytes())
                h.update(repr(ts.rng_state).encode())
            out["digest_" + name] = h.hexdigest()[:16]
    elif what == "meta_gradient":
        from meta_gradient import make_unroll, N_CLS
        try:
            from refimpl.meta.unroll import meta_gradient
        except ImportError:                      # a revision from before refimpl/meta/
            from refimpl.model.unroll import meta_gradient
        config = preset("paper")
        theta, phi, batches = make_unroll(config, 4, np.float32)
        out["meta_gradient"] = best(lambda: meta_gradient(theta, phi, batches, config, n_cls=N_CLS), 2)
    elif what == "small":
        from refimpl.train import init_state, meta_step, train_preset
        tc = train_preset("small"); state = init_state(tc)
        state, _ = meta_step(state, tc)          # warm up (glyph cache)
        steps = {small_steps}
        t = time.process_time()
        for _ in range(steps):
            state, _ = meta_step(state, tc)
        out["small_step"] = (time.process_time() - t) / steps
print("RESULT " + json.dumps(out))
'''


def measure(tree: Path, what: str, small_steps: int, bits_steps: int) -> dict:
    code = MEASURE.format(bench=str(ROOT / "benchmarks"), tree=str(tree), what=what, small_steps=small_steps,
                          bits_steps=bits_steps)
    env = dict(os.environ, PYTHONPATH=str(tree), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"measurement {what} in {tree} failed:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default="5ca445c", help="the revision to compare with (default: before the "
                                                          "trusted path and the vectorised draws)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--small-steps", type=int, default=6)
    parser.add_argument("--bits-steps", type=int, default=4)
    parser.add_argument("--only", nargs="*", default=["bits", "small", "step", "bytes", "meta_gradient"])
    parser.add_argument("--json", help="also write every measurement (with its load average) here")
    args = parser.parse_args()
    log = []
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(other), args.rev], cwd=ROOT, check=True)
        try:
            results = {"other": {}, "this": {}}
            for rnd in range(args.rounds):
                for what in args.only:
                    if what in ("bits", "bytes") and rnd > 0:
                        continue                 # not timed: once is enough
                    for name, tree in (("other", other), ("this", ROOT)):
                        r = measure(tree, what, args.small_steps, args.bits_steps)
                        load = os.getloadavg()[0]
                        log.append({"round": rnd, "what": what, "tree": name, "load1": load, **r})
                        print(f"  round {rnd} {what:<14} {name:<6} load {load:5.2f}  " +
                              " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()),
                              flush=True)
                        for k, v in r.items():
                            if not isinstance(v, (int, float)):
                                results[name][k] = v
                                continue
                            keep = max if k in ("matmul_flops", "copy_bandwidth") else min
                            results[name][k] = keep(v, results[name][k]) if k in results[name] else v
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False)
    load = os.getloadavg()
    print(f"\nrevision {args.rev} ('other') vs this tree; BLAS one thread, CPU time, min of {args.rounds} rounds; "
          f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    rows = []
    for name in ("other", "this"):
        r = results[name]
        row = {"tree": name}
        if "forward" in r:
            fps = r["step_flops"] / r["forward"]
            row.update(forward_ms=r["forward"] * 1e3, vjp_ms=r["vjp"] * 1e3, vjp_over_fwd=r["vjp"] / r["forward"],
                       fwd_gflops=fps / 1e9, mm_gflops=r["matmul_flops"] / 1e9, fwd_over_mm=fps / r["matmul_flops"],
                       peak_mb=r["peak_bytes"] / 2**20, copy_gb_s=r["copy_bandwidth"] / 1e9)
            if "forward_bytes" in r:
                row.update(fwd_gbytes=r["forward_bytes"] / 1e9,
                           fwd_over_bw=r["forward_bytes"] / r["forward"] / r["copy_bandwidth"])
        if "meta_gradient" in r:
            row["meta_gradient_s"] = r["meta_gradient"]
        if "small_step" in r:
            row["small_steps_per_s"] = 1 / r["small_step"]
        rows.append(row)
    keys = [k for k in rows[0] if k != "tree" and k in rows[1]]
    if keys:
        print(f"{'':<11}" + "".join(f"{k:>18}" for k in keys))
        for row in rows:
            print(f"{row['tree']:<11}" + "".join(f"{row[k]:>18.3f}" for k in keys))
        print(f"{'this/other':<11}" + "".join(f"{rows[1][k] / rows[0][k]:>18.3f}" for k in keys))
    for k in sorted(k for k in results["this"] if k.startswith("digest_")):
        same = results["this"][k] == results["other"].get(k)
        print(f"{k}: other {results['other'].get(k)}  this {results['this'][k]}  "
              f"{'bit-identical' if same else 'DIFFERENT'}")
    print("\ntargets: small_steps_per_s this/other >= 2 and bit-identical; vjp_over_fwd <= 2; aims: forward_ms "
          "this/other <= 1/1.6, meta_gradient_s this/other <= 0.7")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rev": args.rev, "log": log, "results": results, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
