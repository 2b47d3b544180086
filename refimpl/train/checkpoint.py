"""The full meta-training state and its checkpoint file (npz + JSON, no pickle).

:class:`TrainState` is everything a run needs to continue bit for bit:
theta, the Adam moments and step count, the number of meta-steps taken,
every task slot's state (task definition, phi, inner steps done, its random
generator's state), the trainer's generator state and the counters.

``checkpoint.npz`` holds the arrays under these names

    theta/<name>                  theta (SPEC 9 names)
    adam/m/<name>, adam/v/<name>  Adam moments (float64)
    task<i>/phi/<name>            slot i's current phi (SPEC 9 names)
    task<i>/perm                  slot i's input permutation (int64)
    task<i>/classes               slot i's source class ids (int64)

plus ``__state__``, a 0-d string array with the JSON of everything else
(format, version, meta-step, Adam t, the TrainConfig, each slot's dataset,
layer sizes, budget, steps done, serial and generator state, the trainer's
generator state, counters, elapsed wall time). Random generator states are
``bit_generator.state`` dicts (PCG64: 128-bit integers, exact in JSON). The
file is written atomically (temp file + rename) by
:func:`refimpl.npzio.write_npz` and read with ``allow_pickle=False``.
"""
from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np

from refimpl.npzio import read_npz, write_npz
from refimpl.params import phi_shapes, theta_shapes, validate_phi, validate_theta
from refimpl.train.optim import AdamState
from refimpl.train.presets import TrainConfig
from refimpl.train.tasks import TaskDef, TaskState, rng_from_state

FORMAT = "refimpl-train-checkpoint"
VERSION = 1
STATE_KEY = "__state__"


class TrainState(NamedTuple):
    step: int                 # meta-steps taken
    theta: dict
    adam: AdamState
    tasks: tuple              # TaskState per slot
    trainer_rng: dict         # trainer generator state
    counters: dict            # dropped_total, tasks_drawn, adam_skipped
    elapsed: float            # wall-clock seconds spent in meta-steps, over all sessions


def _fail(path, message):
    raise ValueError(f"checkpoint {path}: {message}")


def save_checkpoint(path, state: TrainState, tc: TrainConfig) -> None:
    """Write ``state`` atomically to ``path``."""
    arrays = {}
    for name, v in state.theta.items():
        arrays[f"theta/{name}"] = v
        arrays[f"adam/m/{name}"] = state.adam.m[name]
        arrays[f"adam/v/{name}"] = state.adam.v[name]
    tasks_json = []
    for i, ts in enumerate(state.tasks):
        for name, v in ts.phi.items():
            arrays[f"task{i}/phi/{name}"] = v
        arrays[f"task{i}/perm"] = np.asarray(ts.task.perm, dtype=np.int64)
        arrays[f"task{i}/classes"] = np.asarray(ts.task.classes, dtype=np.int64)
        d = ts.task.to_json_dict()
        d.update(steps_done=int(ts.steps_done), serial=int(ts.serial), rng=ts.rng_state)
        tasks_json.append(d)
    meta = {
        "format": FORMAT, "version": VERSION, "step": int(state.step), "adam_t": int(state.adam.t),
        "train_config": tc.to_dict(), "trainer_rng": state.trainer_rng, "tasks": tasks_json,
        "counters": {k: int(v) for k, v in state.counters.items()}, "elapsed": float(state.elapsed),
    }
    arrays[STATE_KEY] = np.array(json.dumps(meta))
    write_npz(path, arrays)


def load_checkpoint(path) -> tuple[TrainState, TrainConfig]:
    """Read a checkpoint written by :func:`save_checkpoint`; returns ``(state, train_config)``.

    Everything is checked: format and version, theta and every phi against
    their configs (names, shapes, dtype, finiteness), the Adam moments'
    names and shapes, the permutations and class lists, the generator states.
    """
    data = read_npz(path, what="checkpoint")
    if STATE_KEY not in data:
        _fail(path, f"no '{STATE_KEY}' entry; not a meta-training checkpoint")
    raw = data.pop(STATE_KEY)
    if raw.ndim != 0 or raw.dtype.kind != "U":
        _fail(path, f"'{STATE_KEY}' must be a 0-d string array")
    try:
        meta = json.loads(str(raw[()]))
    except json.JSONDecodeError as e:
        _fail(path, f"'{STATE_KEY}' is not valid JSON ({e})")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        _fail(path, f"not a {FORMAT} file")
    if meta.get("version") != VERSION:
        _fail(path, f"unsupported version {meta.get('version')!r} (this code reads {VERSION})")
    try:
        tc = TrainConfig.from_dict(meta["train_config"])
        dtype = tc.np_dtype
        theta = {k[len("theta/"):]: v for k, v in data.items() if k.startswith("theta/")}
        validate_theta(theta, tc.model, dtype=dtype, fn=f"checkpoint {path}")
        m = {k[len("adam/m/"):]: a for k, a in data.items() if k.startswith("adam/m/")}
        v = {k[len("adam/v/"):]: a for k, a in data.items() if k.startswith("adam/v/")}
        for label, mom in (("adam/m", m), ("adam/v", v)):
            if set(mom) != set(theta) or any(mom[n].shape != theta[n].shape for n in theta):
                _fail(path, f"{label} does not match theta's names and shapes")
        order = list(theta_shapes(tc.model))          # SPEC 9 order, as init_theta makes it
        theta = {n: theta[n] for n in order}
        m, v = {n: m[n] for n in order}, {n: v[n] for n in order}
        tasks = []
        for i, d in enumerate(meta["tasks"]):
            pre = f"task{i}/"
            sizes = tuple(int(s) for s in d["layer_sizes"])
            classes = data[pre + "classes"]
            if [int(c) for c in classes] != [int(c) for c in d["classes"]]:
                _fail(path, f"slot {i}: class arrays and JSON disagree")
            perm = data[pre + "perm"]
            if perm.shape != (sizes[0],) or not np.array_equal(np.sort(perm), np.arange(sizes[0])):
                _fail(path, f"slot {i}: 'perm' is not a permutation of range({sizes[0]})")
            phi = {k[len(pre + "phi/"):]: a for k, a in data.items() if k.startswith(pre + "phi/")}
            task_config = tc.model.replace(layer_sizes=sizes)
            validate_phi(phi, task_config, dtype=dtype, fn=f"checkpoint {path} slot {i}")
            phi = {n: phi[n] for n in phi_shapes(task_config)}
            rng_from_state(d["rng"])   # checks it
            task = TaskDef(str(d["dataset"]), tuple(int(c) for c in classes), perm.astype(np.int64),
                           sizes, int(d["budget"]))
            tasks.append(TaskState(task, phi, int(d["steps_done"]), int(d["serial"]), d["rng"]))
        if len(tasks) != tc.tasks_per_step:
            _fail(path, f"holds {len(tasks)} task slots, the config says {tc.tasks_per_step}")
        rng_from_state(meta["trainer_rng"])
        state = TrainState(int(meta["step"]), theta, AdamState(m, v, int(meta["adam_t"])), tuple(tasks),
                           meta["trainer_rng"], {k: int(c) for k, c in meta["counters"].items()},
                           float(meta["elapsed"]))
    except (KeyError, TypeError) as e:
        _fail(path, f"missing or malformed entry ({type(e).__name__}: {e})")
    return state, tc
