"""The shipped-rule recipe: theta snapshots and probe lines through the trainer's on_step hook."""
from __future__ import annotations

import json

import numpy as np

from refimpl.cli.recipe import PROBE_FILE, SNAPSHOT_DIR, plot_probe, snapshot_hook
from refimpl.params import load_params
from refimpl.train import CHECKPOINT_FILE, load_checkpoint, run, train_preset


def test_snapshots_and_probe_lines_do_not_change_the_run(tmp_path):
    tc = train_preset("tiny")
    plain, hooked = tmp_path / "plain", tmp_path / "hooked"
    assert run(plain, tc, n_steps=4) == 0
    hooked.mkdir()
    assert run(hooked, tc, n_steps=4, on_step=snapshot_hook(hooked, tc, 2, probe_steps=(0, 2))) == 0
    a, _ = load_checkpoint(plain / CHECKPOINT_FILE)
    b, _ = load_checkpoint(hooked / CHECKPOINT_FILE)
    assert all(a.theta[k].tobytes() == b.theta[k].tobytes() for k in a.theta)
    snaps = sorted(p.name for p in (hooked / SNAPSHOT_DIR).iterdir())
    assert snaps == ["theta_00002.npz", "theta_00004.npz"]
    last, _ = load_params(hooked / SNAPSHOT_DIR / "theta_00004.npz", kind="theta")
    assert all(np.array_equal(last[k], b.theta[k]) for k in last)
    lines = [json.loads(t) for t in (hooked / PROBE_FILE).read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]
    assert [p["step"] for p in lines[0]["probe"]] == [0, 2]
    assert {"J", "accuracy", "effective_rank", "mean_abs_corr", "zero_rows"} <= set(lines[0]["probe"][0])
    # the probe's step-0 row is phi_0 and does not depend on theta
    assert lines[0]["probe"][0] == lines[1]["probe"][0]
    assert plot_probe(hooked).stat().st_size > 0
