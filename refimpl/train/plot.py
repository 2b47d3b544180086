"""``refimpl plot RUN_DIR``: the meta-training curves of a run, as a PNG in the run directory.

Reads ``RUN_DIR/log.jsonl`` and draws J (mean meta-objective of the kept
tasks), the few-shot accuracy and the gradient norm before clipping against
the meta-step, each raw (faint) and smoothed (a trailing moving average over
``window`` steps; by default about 1/20 of the run) with a band of ± one
standard error of that average. Uses matplotlib's Agg
canvas directly (no pyplot, no display needed).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from refimpl.train.rundir import PLOT_FILE, read_log


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points, ignoring NaN (missing) entries.

    Entry i is the mean of the finite values among ``values[max(0, i-window+1) .. i]``
    (NaN when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"smooth: window must be >= 1, got {window}")
    ok = np.isfinite(v)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    ccnt = np.concatenate([[0], np.cumsum(ok)])
    i = np.arange(len(v))
    lo = np.maximum(0, i - window + 1)
    cnt = ccnt[i + 1] - ccnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (csum[i + 1] - csum[lo]) / np.maximum(cnt, 1), np.nan)


def smooth_se(values: np.ndarray, window: int) -> np.ndarray:
    """The standard error of :func:`smooth`'s mean: the sample standard deviation of the same finite
    values over the square root of their count (NaN with fewer than two)."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    c1 = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    c2 = np.concatenate([[0.0], np.cumsum(np.where(ok, v * v, 0.0))])
    cn = np.concatenate([[0], np.cumsum(ok)])
    i = np.arange(len(v))
    lo = np.maximum(0, i - window + 1)
    n = cn[i + 1] - cn[lo]
    s1, s2 = c1[i + 1] - c1[lo], c2[i + 1] - c2[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.maximum(s2 - s1 * s1 / np.maximum(n, 1), 0.0) / np.maximum(n - 1, 1)
        return np.where(n > 1, np.sqrt(var / np.maximum(n, 1)), np.nan)


def _column(records, key):
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in records])


def plot_run(run_dir, *, window: int | None = None, out=None) -> Path:
    """Draw the curves of the run in ``run_dir``; returns the PNG's path (default RUN_DIR/curves.png)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from refimpl.npzio import atomic_write_bytes

    run_dir = Path(run_dir)
    records = read_log(run_dir)
    if not records:
        raise ValueError(f"{run_dir / 'log.jsonl'} is missing or has no meta-step records")
    steps = np.array([r["step"] for r in records])
    if window is None:
        window = max(1, len(records) // 20)
    fig = Figure(figsize=(8.5, 8), dpi=100)
    FigureCanvasAgg(fig)
    panels = (("J", "meta-objective J"), ("accuracy", "few-shot accuracy"), ("grad_norm", "grad norm (before clip)"))
    axes = fig.subplots(len(panels), 1, sharex=True)
    for ax, (key, label) in zip(axes, panels):
        y = _column(records, key)
        ax.plot(steps, y, color="C0", alpha=0.25, lw=0.8, label="per step")
        mean, se = smooth(y, window), smooth_se(y, window)
        ax.plot(steps, mean, color="C0", lw=1.8, label=f"mean of last {window}")
        ax.fill_between(steps, mean - se, mean + se, color="C0", alpha=0.25, lw=0, label="± 1 s.e. of that mean")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if key == "grad_norm" and np.nanmin(np.where(y > 0, y, np.nan), initial=np.inf) < np.inf:
            ax.set_yscale("log")
    dropped = [r["step"] for r in records if r.get("dropped")]
    for s in dropped:
        axes[0].axvline(s, color="C3", alpha=0.3, lw=0.8)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)    # beside the data, not over it
    axes[-1].set_xlabel("meta-step")
    title = f"{run_dir.name}: {len(records)} meta-steps"
    if dropped:
        title += f", {sum(r['dropped'] for r in records)} dropped task gradients (red lines)"
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    out = Path(out) if out is not None else run_dir / PLOT_FILE
    atomic_write_bytes(out, lambda f: fig.savefig(f, format="png"))
    return out
