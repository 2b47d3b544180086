"""An evaluation's output directory as it fills: one file per finished (dataset, seed), so an interrupted
``refimpl eval --out DIR`` continues with ``--resume`` and ends with the report of an uninterrupted run.

Layout of ``DIR`` (every file written atomically, temp file + rename):

- ``partial/evaluation.json``: what is being evaluated (rule label, a digest of
  theta and its config, the settings, the datasets); a resume must match it;
- ``partial/<i>-seed<s>.json``: the benchmark result of seed ``s`` alone on
  the ``i``-th dataset, written as soon as that seed is done;
- ``report.json``, ``report.md``, ``accuracy.png``, ``inner_steps.png``: the
  finished report (:func:`refimpl.evaluation.reporting.write_report`); the
  ``partial/`` files are removed once it is written.

A directory that holds a finished report is refused unless ``force`` (which
removes this module's files and nothing else); one that holds partial results
is refused unless ``resume`` (continue) or ``force`` (start over).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from refimpl.npzio import atomic_write_bytes, remove_stale_temp_files

PARTIAL_DIR = "partial"
MANIFEST_FILE = "evaluation.json"
#: The finished report's files (reporting.write_report), the only ones ``force`` removes besides partial/.
REPORT_FILES = ("report.json", "report.md", "accuracy.png", "inner_steps.png")


def theta_digest(theta: dict, config) -> str:
    """SHA-256 of theta's names, dtypes, shapes and bytes and of the config's JSON (what a resume must match)."""
    h = hashlib.sha256(config.to_json().encode())
    for name in sorted(theta):
        a = np.ascontiguousarray(theta[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _write_json(path: Path, obj) -> None:
    text = json.dumps(obj, indent=1, allow_nan=True) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


class EvalStore:
    """The partial results of one evaluation in ``out_dir`` (see the module docstring)."""

    def __init__(self, out_dir, manifest: dict, *, resume: bool = False, force: bool = False):
        self.out_dir = Path(out_dir)
        self.partial = self.out_dir / PARTIAL_DIR
        self.manifest = json.loads(json.dumps(manifest, allow_nan=True))    # as it reads back
        remove_stale_temp_files(self.out_dir, REPORT_FILES)
        if self.partial.is_dir():
            remove_stale_temp_files(self.partial, [MANIFEST_FILE, *self._record_names()])
        finished = [n for n in REPORT_FILES if (self.out_dir / n).exists()]
        if force:
            self._remove_own_files()
        elif finished and not self.partial.exists():
            raise ValueError(f"{self.out_dir} holds a finished evaluation ({', '.join(finished)}); pass --force "
                             f"(force=True) to replace it, or choose another --out")
        elif self.partial.exists() and not resume:
            n = len(self._record_files())
            raise ValueError(f"{self.out_dir} holds an interrupted evaluation ({n} finished (dataset, seed) "
                             f"results in {PARTIAL_DIR}/); continue it with --resume (resume=True), or start "
                             f"over with --force (force=True)")
        elif self.partial.exists():
            self._check_manifest()
        self.partial.mkdir(parents=True, exist_ok=True)
        _write_json(self.partial / MANIFEST_FILE, self.manifest)

    # -- files ---------------------------------------------------------------------
    def _record_names(self) -> list:
        return [f"{i:02d}-seed{s}.json" for i in range(len(self.manifest["datasets"]))
                for s in range(self.manifest["settings"]["seeds"])]

    def _record_files(self) -> list:
        return [p for p in self.partial.glob("*-seed*.json")] if self.partial.is_dir() else []

    def _path(self, index: int, seed: int) -> Path:
        return self.partial / f"{index:02d}-seed{seed}.json"

    def _remove_own_files(self) -> None:
        for name in REPORT_FILES:
            (self.out_dir / name).unlink(missing_ok=True)
        self.remove_partial()

    def remove_partial(self) -> None:
        """Remove ``partial/`` (its own files only; a directory holding anything else is kept)."""
        if not self.partial.is_dir():
            return
        for p in self._record_files():
            p.unlink(missing_ok=True)
        (self.partial / MANIFEST_FILE).unlink(missing_ok=True)
        try:
            self.partial.rmdir()
        except OSError:          # something that is not ours is in there: leave it
            pass

    def _check_manifest(self) -> None:
        path = self.partial / MANIFEST_FILE
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"--resume: {path} is unreadable ({e}); start over with --force") from None
        differing = [k for k in sorted(set(stored) | set(self.manifest)) if stored.get(k) != self.manifest.get(k)]
        if differing:
            detail = "; ".join(f"{k}: stored {stored.get(k)!r} vs now {self.manifest.get(k)!r}" for k in differing)
            raise ValueError(f"--resume: the interrupted evaluation in {self.out_dir} was made with other "
                             f"settings ({' '.join(detail.split())[:300]}); use the same arguments, or --force")

    # -- records -------------------------------------------------------------------
    def load(self, index: int, seed: int):
        """The stored record of (dataset ``index``, ``seed``), or None when that seed is not done."""
        path = self._path(index, seed)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"--resume: {path} is unreadable ({e}); remove it to compute that seed again") \
                from None
        rows = record.get("per_seed") if isinstance(record, dict) else None
        if not (isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], dict) and rows[0].get("seed") == seed):
            raise ValueError(f"--resume: {path} is not the record of seed {seed}; remove it to compute it again")
        return record

    def save(self, index: int, seed: int, record: dict) -> None:
        _write_json(self._path(index, seed), record)
