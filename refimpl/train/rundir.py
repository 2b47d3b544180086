"""The run directory's lifecycle (SPEC 7): its files, the log, checkpoints, start, resume and restart.

Layout: refimpl/train/README.md. :func:`prepare_run` starts or resumes a run
(refusing to overwrite what no run of ours wrote); :func:`write_checkpoint`
keeps the latest and the previous checkpoint; :func:`read_log` and
:func:`truncate_log` keep the log in step with the checkpoint.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from refimpl.npzio import atomic_write_bytes, remove_stale_temp_files
from refimpl.params import save_params
from refimpl.runtime import RunDirError, check_run_dir
from refimpl.train.checkpoint import TrainState, load_checkpoint, save_checkpoint
from refimpl.train.presets import TrainConfig
from refimpl.train.step import init_state

CONFIG_FILE = "train_config.json"
CHECKPOINT_FILE = "checkpoint.npz"
#: The checkpoint before the latest: resumed from when the latest is missing or unreadable.
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.npz"
#: Where an unreadable latest checkpoint is moved when the run falls back to the previous one.
UNREADABLE_CHECKPOINT_FILE = "checkpoint.unreadable.npz"
THETA_FILE = "theta.npz"
LOG_FILE = "log.jsonl"
PLOT_FILE = "curves.png"
#: Every file the trainer writes in a run directory (``--restart`` removes these and nothing else).
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE, UNREADABLE_CHECKPOINT_FILE, THETA_FILE,
             LOG_FILE, PLOT_FILE)



def read_log(run_dir) -> list[dict]:
    """The JSONL log's records; [] when there is no log.

    A torn last line (no newline: a kill mid-write) is skipped; any other line
    that is not a JSON record with a "step" is a ValueError (a corrupted log).
    """
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is corrupted (not UTF-8 text at byte {e.start})") from None
    lines = text.split("\n")
    out = []
    for number, line in enumerate(lines[:-1], 1):   # lines[-1] is "" or the torn last line
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if not (isinstance(rec, dict) and isinstance(rec.get("step"), int)):
            raise ValueError(f"{path} is corrupted (line {number} is not a meta-step record)")
        out.append(rec)
    return out


def truncate_log(run_dir, step: int) -> None:
    """Keep only the log lines of meta-steps 1..step (the ones the checkpoint contains)."""
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return
    keep = [r for r in read_log(run_dir) if r["step"] <= step]
    text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in keep)
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def write_checkpoint(run_dir, state: TrainState, tc: TrainConfig) -> None:
    """The full checkpoint (the one it replaces kept as the previous), then the theta-only file (each atomic)."""
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT_FILE).exists():
        os.replace(run_dir / CHECKPOINT_FILE, run_dir / PREVIOUS_CHECKPOINT_FILE)
    save_checkpoint(run_dir / CHECKPOINT_FILE, state, tc)
    save_params(run_dir / THETA_FILE, state.theta, tc.model, kind="theta")



def _remove_stale_temp_files(run_dir: Path) -> None:
    """The temporary files of atomic writes of the trainer's own files that a kill -9 left behind."""
    for p in remove_stale_temp_files(run_dir, RUN_FILES):
        print(f"removed {p}, left by an interrupted write", file=sys.stderr)


def _check_holds_run(run_dir: Path) -> None:
    """``--restart`` deletes only in a directory that a run of ours wrote: one with a readable
    ``train_config.json`` (the first file a run writes)."""
    try:
        TrainConfig.from_json((run_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise RunDirError(f"--restart: {run_dir} holds no run to restart (no readable {CONFIG_FILE}: "
                          f"{getattr(e, 'strerror', None) or e}); nothing removed") from None


def _load_for_resume(run_dir: Path):
    """The latest readable checkpoint: the latest, else (saying so on stderr) the previous one."""
    latest, previous = run_dir / CHECKPOINT_FILE, run_dir / PREVIOUS_CHECKPOINT_FILE
    problem = None
    if latest.exists():
        try:
            return load_checkpoint(latest)
        except ValueError as e:
            problem = f"{latest} is unreadable ({e})"
    else:
        problem = f"{latest} is missing"
    if not previous.exists():
        if latest.exists():
            raise RunDirError(f"--resume: {problem}, and there is no previous checkpoint; start over with "
                              f"--restart (removes only the trainer's files) or use another --run-dir")
        if (run_dir / LOG_FILE).exists():
            raise RunDirError(f"--resume: {run_dir} has a log but no checkpoint to resume from; start over "
                              f"with --restart (removes only the trainer's files) or use another --run-dir")
        raise RunDirError(f"--resume: {latest} does not exist; start a run there without --resume")
    try:
        state, stored = load_checkpoint(previous)
    except ValueError as e:
        raise RunDirError(f"--resume: {problem}, and the previous checkpoint is unreadable too ({e}); start "
                          f"over with --restart (removes only the trainer's files)") from None
    if latest.exists():   # kept for inspection, and so the next checkpoint does not push it into `previous`
        os.replace(latest, run_dir / UNREADABLE_CHECKPOINT_FILE)
        problem += f"; moved to {UNREADABLE_CHECKPOINT_FILE}"
    print(f"warning: {problem}; resuming from the previous checkpoint {previous} (meta-step {state.step})",
          file=sys.stderr)
    return state, stored


def prepare_run(run_dir, tc: TrainConfig | None, *, resume: bool, restart: bool = False, n_steps=None,
                checkpoint_every=None, expect=None):
    """Start or resume; returns ``(state, tc)``.

    Start: ``run_dir`` must not hold a run already (no checkpoint, no log),
    unless ``restart``, which requires a readable ``train_config.json`` (a
    run of ours) and first removes the files the trainer writes
    (:data:`RUN_FILES`) and nothing else; never overwrites a file of those
    names that no run wrote; writes ``train_config.json`` and
    the step-0 checkpoint. Resume: reads the checkpoint, or the previous one
    when it is missing or unreadable (its TrainConfig wins; ``tc``, when
    given, must agree on every field but ``n_steps`` and
    ``checkpoint_every``), truncates the log to the checkpoint's step;
    ``expect`` (field -> value), when given, must match the checkpoint's
    TrainConfig too. ``n_steps`` / ``checkpoint_every`` override.
    """
    if resume and restart:
        raise RunDirError("--resume and --restart exclude each other")
    overrides = {}
    if n_steps is not None:
        overrides["n_steps"] = n_steps
    if checkpoint_every is not None:
        overrides["checkpoint_every"] = checkpoint_every
    if resume:
        try:
            run_dir = check_run_dir(run_dir, create=False)
        except RunDirError as e:
            raise RunDirError(f"--resume: {e}") from None
        _remove_stale_temp_files(run_dir)
        state, stored = _load_for_resume(run_dir)
        if tc is not None:
            differing = [n for n in tc.diff(stored) if n not in ("n_steps", "checkpoint_every")]
            if differing:
                detail = ", ".join(f"{n}: checkpoint {getattr(stored, n)!r} vs requested {getattr(tc, n)!r}"
                                   for n in differing)
                raise RunDirError(f"--resume: the checkpoint in {run_dir} was made with other settings ({detail})")
        for name, value in (expect or {}).items():
            if getattr(stored, name) != value:
                raise RunDirError(f"--resume: the run in {run_dir} has {name} {getattr(stored, name)!r}, "
                                  f"not {value!r}")
        tc = stored.replace(**overrides)
        try:
            truncate_log(run_dir, state.step)
        except ValueError as e:
            raise RunDirError(f"--resume: {e}; move it aside to resume without it") from None
        return state, tc
    if tc is None:
        raise RunDirError("a new run needs a TrainConfig")
    tc = tc.replace(**overrides)
    run_dir = check_run_dir(run_dir, create=True)
    _remove_stale_temp_files(run_dir)
    if restart:
        _check_holds_run(run_dir)
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
    if (run_dir / CHECKPOINT_FILE).exists() or (run_dir / PREVIOUS_CHECKPOINT_FILE).exists():
        raise RunDirError(f"{run_dir} already holds a run; continue it with --resume, start over with "
                          f"--restart (removes only the trainer's files), or use another --run-dir")
    if (run_dir / LOG_FILE).exists():
        raise RunDirError(f"{run_dir} holds a log but no checkpoint; start over with --restart (removes only "
                          f"the trainer's files) or use another --run-dir")
    # Never overwrite a file of the trainer's names that no run of ours wrote.
    foreign = [name for name in RUN_FILES if (run_dir / name).exists()]
    if foreign:
        raise RunDirError(f"{run_dir} holds {', '.join(foreign)} but no run to continue; refusing to overwrite "
                          f"them: use another --run-dir")
    text = tc.to_json() + "\n"
    atomic_write_bytes(run_dir / CONFIG_FILE, lambda f: f.write(text.encode()))
    state = init_state(tc)
    write_checkpoint(run_dir, state, tc)
    return state, tc

