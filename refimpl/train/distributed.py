"""The meta-batch on Dask distributed (optional extra ``refimpl[distributed]``).

The driver (:func:`refimpl.train.trainer.run`, the loop) keeps theta, Adam, every
task's state and every random generator's state. A worker runs
:func:`refimpl.train.step.run_slot` for one slot: it rebuilds the slot's
generator from the state the job carries, draws the slot's U and batches
with it, computes the meta-gradient, and returns the result with the
generator's advanced state; the driver continues the slot's stream from that
state. run_slot is a pure function of its arguments, and the results are
gathered in slot order, so a run on N workers ends with exactly the theta
(and every generator state) of the single-process run. What travels is
theta, the slot's phi and task definition and a generator state (tens to
hundreds of KiB), not its batches.

    with DaskTasks(workers=2) as tasks:               # a LocalCluster of 2 worker processes
        run(run_dir, tc, run_tasks=tasks)
    with DaskTasks(scheduler="tcp://host:8786"):      # join a running cluster

A worker that dies is replaced by the scheduler, which runs the lost task
again on another worker (``distributed.scheduler.allowed-failures``); an
exception in a task is retried ``retries`` times. The result of a slot is
taken once, from the future of its one submission, so nothing is counted
twice. A scheduler that cannot be reached within ``timeout`` seconds, or
that is lost during a meta-step, raises :class:`DistributedError` (one line).
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import CancelledError

from refimpl.train.step import run_slot

#: Seconds to wait for the scheduler (connecting, or silent during a meta-step) before giving up.
DEFAULT_TIMEOUT = 30.0
#: Seconds between looks at the tasks in flight (short against the compute time of a task).
POLL_SECONDS = 0.003
#: How often a task that raised is submitted again before the meta-step fails.
DEFAULT_RETRIES = 2


class DistributedError(RuntimeError):
    """The Dask cluster cannot run the meta-step (unreachable or lost scheduler, missing extra)."""


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise DistributedError("--workers and --scheduler need the optional extra: pip install "
                               "'refimpl[distributed]' (dask and distributed)") from None
    return distributed


def check_scheduler_address(address: str) -> str:
    """``address`` if it is a Dask scheduler address (``tcp://host:port``, ``host:port``, ...); a
    ValueError (one line) before any connection is tried otherwise: a Client built from a bad address
    leaves a traceback behind when it is collected."""
    distributed = _import_distributed()
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls"):
            host, port = parse_host_port(location)
            if not host or not port:
                raise ValueError("needs a host and a port")
        elif scheme not in distributed.comm.registry.backends:
            raise ValueError(f"unknown scheme {scheme!r}")
    except (ValueError, TypeError) as e:
        raise ValueError(f"--scheduler {address!r} is not a Dask scheduler address such as tcp://host:8786 "
                         f"({' '.join(str(e).split())})") from None
    return address


def _run_slot_single_thread(theta, job, meta_gradient_fn):
    """run_slot with BLAS limited to one thread, as in the single-process trainer."""
    from refimpl.runtime import blas_single_thread

    with blas_single_thread():
        return run_slot(theta, job, meta_gradient_fn)


class DaskTasks:
    """``run_tasks`` for :func:`refimpl.train.step.meta_step` on a Dask cluster (a context manager).

    ``workers``: start a LocalCluster of that many worker processes, one
    thread each (BLAS single-threaded in each); ``scheduler``: the address of
    a running scheduler (``dask scheduler``). Exactly one of the two.
    """

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES):
        if (workers is None) == (scheduler is None):
            raise ValueError("DaskTasks needs exactly one of workers and scheduler")
        self.workers, self.scheduler, self.timeout, self.retries = workers, scheduler, timeout, retries
        self.cluster = self.client = None
        self.last_shipped_bytes = 0

    def __enter__(self):
        distributed = _import_distributed()
        # A lost scheduler is reported once, as a DistributedError; the client's own tracebacks
        # on stderr would bury that line.
        self._handlers = [(h, h.level) for h in logging.getLogger("distributed").handlers]
        for h, _ in self._handlers:
            h.setLevel(logging.CRITICAL + 1)
        try:
            if self.workers is not None:
                self.cluster = distributed.LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=50, worker_class=distributed.Nanny)
                address = self.cluster.scheduler_address
            else:
                address = self.scheduler
            self.client = distributed.Client(address, timeout=self.timeout, set_as_default=False)
        except (OSError, TimeoutError) as e:
            self.close()
            where = self.scheduler or "the local cluster"
            raise DistributedError(f"cannot reach the Dask scheduler at {where} within {self.timeout:g} s "
                                   f"({type(e).__name__})") from None
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:   # closing after the scheduler is gone may fail; nothing to keep
                    pass
        self.client = self.cluster = None
        for h, level in getattr(self, "_handlers", ()):
            h.setLevel(level)
        self._handlers = ()

    def __call__(self, theta, jobs, meta_gradient_fn=None):
        """[run_slot(theta, job, meta_gradient_fn) for job in jobs], computed on the cluster, in order.

        At most one task per worker thread is in flight: the next slot is submitted when a task
        finishes, so each slot goes to the first worker that is free (the scheduler would
        otherwise hand out every slot at once, two per one-thread worker, whatever their sizes).
        """

        client = self.client
        jobs = list(jobs)
        slots = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))
        results = [None] * len(jobs)
        inflight, next_slot, submitted = {}, 0, []
        lost_since = None

        def submit():
            nonlocal next_slot
            future = client.submit(_run_slot_single_thread, theta, jobs[next_slot], meta_gradient_fn, pure=False,
                                   retries=self.retries)
            inflight[future] = next_slot
            submitted.append(future)
            next_slot += 1

        try:
            while next_slot < len(jobs) and len(inflight) < slots:
                submit()
            checked = time.monotonic()
            while inflight:
                done = [f for f in inflight if f.done()]
                if not done:
                    time.sleep(POLL_SECONDS)
                    if time.monotonic() - checked < 0.5:
                        continue
                    checked = time.monotonic()
                    if client.status == "running":
                        lost_since = None
                    else:
                        lost_since = lost_since or time.monotonic()
                        if time.monotonic() - lost_since > self.timeout:
                            raise self._lost("no answer")
                    continue
                for future in done:
                    results[inflight.pop(future)] = future.result()
                    if next_slot < len(jobs):
                        submit()
            return results
        except DistributedError:
            raise
        except Exception as e:
            if client.status == "running" and not isinstance(e, (OSError, CancelledError)):
                raise
            raise self._lost(type(e).__name__) from None
        finally:
            for f in submitted:
                f.release()

    def _lost(self, why: str) -> DistributedError:
        where = self.scheduler or "the local cluster"
        return DistributedError(f"lost the Dask scheduler at {where} during a meta-step ({why}, waited at most "
                                f"{self.timeout:g} s); the checkpoint holds the last completed meta-step, "
                                f"continue with --resume")
