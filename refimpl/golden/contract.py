"""What refimpl's exporter and checker add to the golden format (:mod:`refimpl.golden.format`):
a case to export (:class:`CaseSpec`), what an evaluator returns (:class:`Evaluation`), the
cotangent seeding and the source hash.

The format itself (manifest layout, reading case files, error metric, pass
rules) lives in :mod:`refimpl.golden.format`, which needs NumPy alone; its
names are re-exported here.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import refimpl
from refimpl.golden.format import (
    COMPARED_ROLES,
    DEFAULT_RTOL,
    FLOAT32_FACTOR,
    FLOAT32_FLOOR,
    MANIFEST_FILE,
    ROLES,
    SCHEMA_VERSION,
    SMALL_CASE_WIDTH,
    GoldenError,
    float32_enforced,
    float32_limit,
    float64_limit,
    is_small_case,
    read_case,
    read_manifest,
    rel_error,
    sha256_array,
    split_roles,
    validate_manifest,
)

__all__ = ["SCHEMA_VERSION", "MANIFEST_FILE", "DEFAULT_RTOL", "FLOAT32_FLOOR", "FLOAT32_FACTOR", "ROLES",
           "COMPARED_ROLES", "SMALL_CASE_WIDTH", "GoldenError", "Evaluation", "CaseSpec", "Evaluator",
           "case_rng", "sha256_array", "source_sha256", "rel_error", "float32_limit", "float64_limit",
           "float32_enforced", "is_small_case", "read_manifest", "validate_manifest", "read_case", "split_roles"]


@dataclass
class Evaluation:
    """What an evaluator returns for one case.

    outputs: output name -> array (stored as ``out/<name>``)
    vjp: cotangents (output name -> array) -> grads (input name -> array)
    value_only: outputs that get no cotangent (docs/golden.md section 3)
    fixed_cotangents: outputs whose cotangent is fixed rather than random
    """

    outputs: dict[str, np.ndarray]
    vjp: Callable[[dict], dict]
    value_only: frozenset = frozenset()
    fixed_cotangents: dict = field(default_factory=dict)


@dataclass
class CaseSpec:
    name: str
    kind: str
    inputs: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    config: dict | None = None
    preset: str | None = None        # "tiny", "mid", "paper" or None (primitive cases); informational


#: ``evaluator(inputs, attrs, config_dict_or_None) -> Evaluation``
Evaluator = Callable[[dict, dict, "dict | None"], Evaluation]


def case_rng(name: str) -> np.random.Generator:
    """A generator seeded from the case name, so every case is reproducible on its own."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))


def source_sha256() -> str:
    """Hash of every .py file of the package (path and content), in sorted order."""
    root = Path(refimpl.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
