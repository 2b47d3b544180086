"""Copy the small files of a meta-training run into the repository, so that a later session can resume it.

    python examples/transfer/collect_run.py RUN_DIR experiments/NAME

Copies ``checkpoint.npz`` (not the previous one, to keep the copy small), ``train_config.json``,
``theta.npz``, ``commands.txt`` (how the run was started and resumed), the
theta snapshots ``thetas/*.npz``, and the log and probe log (gzip-compressed
when larger than 1 MB: ``log.jsonl.gz``). Prints the run's progress: meta-steps,
tasks drawn, mean J of the first and last 50 kept steps, CPU seconds of its steps.
Resuming from the copy: ``cp -r experiments/NAME RUN_DIR`` (``gunzip`` a
compressed log first), then the recipe's command with the same flags; the run
continues bit for bit from the checkpoint.
"""
from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

SMALL = ("checkpoint.npz", "train_config.json", "theta.npz", "commands.txt")
LOGS = ("log.jsonl", "probe.jsonl")
LIMIT = 1 << 20


def collect(run_dir, dest) -> dict:
    run_dir, dest = Path(run_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in SMALL:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, dest / name)
    if (run_dir / "thetas").is_dir():
        (dest / "thetas").mkdir(exist_ok=True)
        for p in sorted((run_dir / "thetas").glob("*.npz")):
            shutil.copyfile(p, dest / "thetas" / p.name)
    records = []
    for name in LOGS:
        src = run_dir / name
        if not src.is_file():
            continue
        data = src.read_bytes()
        # only complete lines: the run may be writing its next one
        data = data[:data.rfind(b"\n") + 1]
        if name == "log.jsonl":
            records = [json.loads(t) for t in data.decode().splitlines() if t.strip()]
        if len(data) > LIMIT:
            (dest / name).unlink(missing_ok=True)
            (dest / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (dest / f"{name}.gz").unlink(missing_ok=True)
            (dest / name).write_bytes(data)
    J = [r["J"] for r in records if r.get("J") is not None]
    return {"meta_steps": records[-1]["step"] if records else 0,
            "tasks_drawn": records[-1]["tasks_drawn"] if records else 0,
            "J_first_50": round(sum(J[:50]) / max(1, len(J[:50])), 4) if J else None,
            "J_last_50": round(sum(J[-50:]) / max(1, len(J[-50:])), 4) if J else None,
            "step_seconds": round(sum(r["step_time"] for r in records), 1)}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(json.dumps(collect(sys.argv[1], sys.argv[2])))
