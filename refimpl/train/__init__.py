"""Meta-training (SPEC 7), in one process or with the meta-batch on Dask workers: ``refimpl train``, ``refimpl plot``.

May import every layer below it (meta, rule, base_model, ops, config, params, data); above it: evaluation, golden, cli.

    from refimpl.train import train_preset, run
    tc = train_preset("tiny")                      # TrainConfig (frozen, JSON round trip)
    run("runs/x", tc, n_steps=10)                  # start; returns 0, or 130 after Ctrl-C
    run("runs/x", resume=True, n_steps=20)         # continue bit for bit

One job per module: :mod:`.step` (the meta-step's maths), :mod:`.rundir` (the
run directory: files, log, checkpoints, resume, restart; layout in
refimpl/train/README.md), :mod:`.trainer` (the loop), :mod:`.distributed` (the
meta-batch on Dask), :mod:`.optim`, :mod:`.tasks`, :mod:`.presets`,
:mod:`.checkpoint`, :mod:`.plot`. The commands are in refimpl/cli/ (train.py, plot.py).
"""
from __future__ import annotations

from refimpl.runtime import EXIT_INTERRUPTED, RunDirError
from refimpl.train.checkpoint import TrainState, load_checkpoint, save_checkpoint
from refimpl.train.optim import (
                                 AdamState,
                                 adam_init,
                                 adam_step,
                                 budget_scale,
                                 clip_by_global_norm,
                                 global_norm,
                                 learning_rate,
                                 sample_budget,
                                 unroll_range,
)
from refimpl.train.presets import PRESET_NAMES, TrainConfig, train_preset
from refimpl.train.rundir import CHECKPOINT_FILE, CONFIG_FILE, LOG_FILE, PLOT_FILE, THETA_FILE, read_log
from refimpl.train.step import init_state, meta_step
from refimpl.train.trainer import run

__all__ = [
    "TrainState", "load_checkpoint", "save_checkpoint", "AdamState", "adam_init", "adam_step",
    "budget_scale", "clip_by_global_norm", "global_norm", "learning_rate", "sample_budget",
    "unroll_range", "PRESET_NAMES", "TrainConfig", "train_preset", "CHECKPOINT_FILE", "CONFIG_FILE",
    "EXIT_INTERRUPTED", "LOG_FILE", "PLOT_FILE", "THETA_FILE", "RunDirError", "init_state",
    "meta_step", "read_log", "run",
]
