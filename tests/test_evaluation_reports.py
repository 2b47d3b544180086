"""The written report: every cell of the Markdown tables against report.json, and atomic files.

The Markdown is parsed back cell by cell and compared with the JSON written
beside it (to the precision each column prints). Every file of
:func:`refimpl.evaluation.reporting.write_report` must survive a failure in the
middle of its own rewrite: the write is made to fail after half its bytes,
through every ``open`` (so a direct, non-atomic write is caught too), and the
old file must still be there, byte for byte, with no temporary file left over.
"""
from __future__ import annotations

import builtins
import errno
import io
import json
import math
import os

import pytest

from refimpl.evaluation import reporting

REPORT_FILES = ("report.json", "report.md", "accuracy.png", "inner_steps.png")


def _row(method, acc, acc_se, delta, delta_se, better, n, rank, corr, zero, diverged):
    return {"method": method, "acc": acc, "acc_se": acc_se, "delta": delta, "delta_se": delta_se,
            "better": better, "n": n, "effective_rank": rank, "mean_abs_corr": corr, "zero_rows": zero,
            "diverged": diverged}


def _report(rule="a rule"):
    # every number distinct from every other in its row, so a swapped column shows
    digits = [_row("rule@0", 0.612, 0.034, 0.0, 0.0, 0, 4, 6.5, 0.23, 0.07, 0),
              _row("rule@10", 0.655, 0.021, 0.043, 0.017, 3, 4, 5.2, 0.31, 0.12, 0),
              _row("rule@100", 0.391, 0.052, -0.221, 0.048, 0, 3, 2.1, 0.82, 0.44, 1),
              _row("raw", 0.874, 0.011, 0.262, 0.029, 4, 4, 11.3, 0.18, 0.0, 0),
              _row("ink", 0.287, 0.015, -0.325, 0.041, 1, 4, 1.0, float("nan"), 0.0, 0)]
    moons = [_row("rule@0", 0.811, float("nan"), 0.0, float("nan"), 0, 1, 3.4, 0.45, 0.09, 0),
             _row("rule@10", 0.733, float("nan"), -0.078, float("nan"), 0, 1, 1.6, 0.91, 0.3, 0),
             _row("ink", 0.502, float("nan"), -0.309, float("nan"), 0, 1, 1.0, float("nan"), 0.0, 0)]
    res = {name: {"summary": rows, "per_seed": [{}] * rows[0]["n"], "k_shot": 5, "k_query": 10, "n_trials": 3,
                  "layer_sizes": [64, 32, 16], "n_classes": 10 if name == "digits" else None}
           for name, rows in (("digits", digits), ("moons", moons))}
    return {"rule": rule, "notes": ["a note"], "datasets": res}


def _parse_tables(markdown: str) -> dict:
    """``{dataset: [cells of each table row]}`` from the report's Markdown."""
    tables, name = {}, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            name = line[3:].split(":")[0]
            tables[name] = []
        elif line.startswith("|") and name is not None:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] != "method" and not cells[0].startswith("---"):
                tables[name].append(cells)
    return tables


def _number(text):
    return float("nan") if text == "nan" else float(text)


def _close(cell, value, places):
    """``cell`` prints ``value`` rounded to ``places`` decimals (NaN prints as nan)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return cell == "nan"
    return abs(_number(cell) - value) <= 0.5 * 10 ** -places + 1e-12


def test_every_markdown_cell_equals_its_json_value(tmp_path):
    paths = reporting.write_report(_report(), tmp_path)
    saved = json.loads(paths["json"].read_text())
    tables = _parse_tables(paths["markdown"].read_text())
    assert set(tables) == set(saved["datasets"]) == {"digits", "moons"}
    n_cells = 0
    for name, rows in tables.items():
        summary = saved["datasets"][name]["summary"]
        assert [cells[0] for cells in rows] == [r["method"] for r in summary]
        rank0 = summary[0]["effective_rank"]
        for cells, r in zip(rows, summary):
            assert len(cells) == 10, cells
            acc, acc_se = cells[1].split(" ± ")
            delta, delta_se = cells[2].split(" ± ")
            assert _close(acc, r["acc"], 3), (r["method"], "acc", cells[1])
            assert _close(acc_se, r["acc_se"], 3), (r["method"], "acc_se", cells[1])
            assert _close(delta, r["delta"], 3), (r["method"], "delta", cells[2])
            assert _close(delta_se, r["delta_se"], 3), (r["method"], "delta_se", cells[2])
            assert cells[3] == f"{r['better']}/{r['n']}"
            assert _close(cells[4], r["effective_rank"], 1), (r["method"], "rank", cells[4])
            assert _close(cells[5], r["mean_abs_corr"], 2), (r["method"], "corr", cells[5])
            assert _close(cells[6], r["zero_rows"], 2), (r["method"], "zero rows", cells[6])
            assert int(cells[7]) == r["n"] and int(cells[8]) == r["diverged"]
            collapsed = r["method"].startswith("rule@") and r["effective_rank"] < 0.5 * rank0
            assert cells[9] == ("COLLAPSED" if collapsed else ""), r["method"]
            n_cells += len(cells)
    assert n_cells == 8 * 10
    # the hand-chosen flags: digits rule@100 (2.1 < 3.25) collapsed, moons rule@10 (1.6 < 1.7) too
    assert [c[0] for rows in tables.values() for c in rows if c[9]] == ["rule@100", "rule@10"]


class _HalfWriteThenFail:
    """A writable file that writes half of its first write, then fails as a full disk would."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[:len(data) // 2])
        self._f.flush()
        raise OSError(errno.ENOSPC, "No space left on device (injected)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
        return False

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.fixture
def fail_writes_to(monkeypatch):
    """``fail_writes_to(name)``: from now on every file opened for writing whose name contains ``name``
    (directly or as a temporary name next to it) fails in the middle of its first write."""
    real_open = io.open

    def start(target):
        def failing_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            if not any(c in mode for c in "wax+"):
                return f
            name = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.fspath(file)
            return _HalfWriteThenFail(f) if target in os.path.basename(name) else f
        monkeypatch.setattr(builtins, "open", failing_open)
        monkeypatch.setattr(io, "open", failing_open)
    return start


@pytest.mark.parametrize("target", REPORT_FILES)
def test_a_failed_rewrite_leaves_the_old_file_whole(tmp_path, fail_writes_to, target):
    reporting.write_report(_report("the old rule"), tmp_path)
    old = {name: (tmp_path / name).read_bytes() for name in REPORT_FILES}
    fail_writes_to(target)
    with pytest.raises(OSError, match="injected"):
        reporting.write_report(_report("a new rule with another title"), tmp_path)
    assert (tmp_path / target).read_bytes() == old[target]
    assert sorted(os.listdir(tmp_path)) == sorted(REPORT_FILES)      # no temporary file left behind


def test_the_failure_injection_breaks_a_direct_write(tmp_path, fail_writes_to):
    # the tester: a plain write of the same file is left half-written by the injected failure
    (tmp_path / "report.json").write_text("old contents\n")
    fail_writes_to("report.json")
    with pytest.raises(OSError, match="injected"):
        (tmp_path / "report.json").write_text("new contents, longer than the old\n")
    assert (tmp_path / "report.json").read_text() != "old contents\n"
