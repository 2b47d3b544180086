"""The golden-value contract (SPEC 10): what a case is, the manifest's layout, the error metric
and the pass rules.

A golden set is a directory holding ``manifest.json`` and one ``<case>.npz``
per case. :func:`read_manifest` accepts only a manifest of this layout (any
other content is a :class:`GoldenError` naming what is wrong), so the
exporter and the checker can trust its fields' types once it has been read.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

import refimpl
from refimpl.reference.gradcheck import rel_error
from refimpl.npzio import little_endian

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
DEFAULT_RTOL = 1e-6
#: SPEC 10: a float32 run passes an array when err <= max(1e-4, 3 x the reference's float32 error).
FLOAT32_FLOOR = 1e-4
FLOAT32_FACTOR = 3.0
ROLES = ("input", "output", "cotangent", "grad")
COMPARED_ROLES = ("output", "grad")

__all__ = ["SCHEMA_VERSION", "MANIFEST_FILE", "DEFAULT_RTOL", "FLOAT32_FLOOR", "FLOAT32_FACTOR", "ROLES",
           "GoldenError", "Evaluation", "CaseSpec", "Evaluator", "case_rng", "sha256_array", "source_sha256",
           "rel_error", "float32_limit", "float64_limit", "read_manifest", "validate_manifest"]


class GoldenError(ValueError):
    """A golden set, manifest or case file that cannot be read, written or judged."""


@dataclass
class Evaluation:
    """What an evaluator returns for one case.

    outputs: output name -> array (stored as ``out/<name>``)
    vjp: cotangents (output name -> array) -> grads (input name -> array)
    value_only: outputs that get no cotangent (SPEC 10's exceptions)
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
    preset: str | None = None        # "tiny", "mid", "paper" or None (primitive cases)


#: ``evaluator(inputs, attrs, config_dict_or_None) -> Evaluation``
Evaluator = Callable[[dict, dict, "dict | None"], Evaluation]


def case_rng(name: str) -> np.random.Generator:
    """A generator seeded from the case name, so every case is reproducible on its own."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))


def sha256_array(a: np.ndarray) -> str:
    return hashlib.sha256(little_endian(a).tobytes()).hexdigest()


def source_sha256() -> str:
    """Hash of every .py file of the package (path and content), in sorted order."""
    root = Path(refimpl.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------- pass rules
def float64_limit(recorded_rtol: float) -> float:
    """The float64 limit: the manifest's rtol, which may only tighten the default."""
    return min(recorded_rtol, DEFAULT_RTOL)


def float32_limit(recorded_error: float, own_error: float) -> float:
    """SPEC 10's float32 limit, ``max(1e-4, 3 x float32 error)``.

    The float32 error used is the one the manifest records, capped at the one
    refimpl measures itself on the same case (its float32 run against its
    float64 run), so a manifest can tighten the limit but never widen it.
    """
    return max(FLOAT32_FLOOR, FLOAT32_FACTOR * min(recorded_error, own_error))


# ---------------------------------------------------------------- manifest
_SHA256 = re.compile(r"[0-9a-f]{64}")


def read_manifest(directory) -> dict:
    """The manifest of the golden set in ``directory``, checked against the layout of SPEC 10."""
    path = Path(directory) / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise GoldenError(f"{path} does not exist (not a golden set)") from None
    except OSError as e:
        raise GoldenError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise GoldenError(f"{path} is not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise GoldenError(f"{path} is not valid JSON ({e})") from None
    validate_manifest(manifest, where=str(path))
    return manifest


def _type_name(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise GoldenError(f"{where}: {message}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_manifest(manifest, where: str = MANIFEST_FILE) -> None:
    """Raise :class:`GoldenError` naming the first field of ``manifest`` that breaks SPEC 10's layout."""
    _require(isinstance(manifest, dict), where, f"must be a JSON object, not {_type_name(manifest)}")
    version = manifest.get("schema_version")
    _require(version == SCHEMA_VERSION, where,
             f"unknown schema_version {version!r} (this verifier knows {SCHEMA_VERSION})")
    _require(isinstance(manifest.get("generator"), dict), where, "'generator' must be an object")
    cases = manifest.get("cases")
    _require(isinstance(cases, list), where, f"'cases' must be a list, not {_type_name(cases)}")
    names = set()
    for i, entry in enumerate(cases):
        _validate_entry(entry, f"{where}: case {i}")
        _require(entry["name"] not in names, where, f"case name {entry['name']!r} appears twice")
        names.add(entry["name"])


def _validate_entry(entry, where: str) -> None:
    _require(isinstance(entry, dict), where, f"must be an object, not {_type_name(entry)}")
    for key in ("name", "kind", "file"):
        _require(isinstance(entry.get(key), str) and entry[key] != "", where, f"'{key}' must be a non-empty string")
    where = f"{where} ({entry['name']!r})"
    _require(entry["file"] == Path(entry["file"]).name and entry["file"].endswith(".npz")
             and not entry["file"].startswith("."), where,
             f"'file' must be a plain .npz file name in the set's directory, not {entry['file']!r}")
    _require(isinstance(entry.get("attrs", {}), dict), where, "'attrs' must be an object")
    _require(entry.get("config") is None or isinstance(entry["config"], dict), where,
             "'config' must be an object or null")
    arrays = entry.get("arrays")
    _require(isinstance(arrays, dict) and arrays, where, "'arrays' must be a non-empty object")
    for name, meta in arrays.items():
        _require(isinstance(meta, dict), where, f"array {name!r} must be an object")
        _require(meta.get("role") in ROLES, where, f"array {name!r} has role {meta.get('role')!r}, not one of {ROLES}")
        shape = meta.get("shape")
        _require(isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                 for n in shape), where,
                 f"array {name!r}: 'shape' must be a list of non-negative integers")
        _require(isinstance(meta.get("dtype"), str), where, f"array {name!r}: 'dtype' must be a string")
        _require(isinstance(meta.get("sha256"), str) and _SHA256.fullmatch(meta["sha256"]) is not None, where,
                 f"array {name!r}: 'sha256' must be 64 lowercase hex digits")
    tolerances = entry.get("tolerances")
    _require(isinstance(tolerances, dict), where, "'tolerances' must be an object")
    for name, meta in arrays.items():
        if meta["role"] not in COMPARED_ROLES:
            continue
        tol = tolerances.get(name)
        _require(isinstance(tol, dict), where, f"'tolerances' has no entry for {name!r}")
        _require(_is_number(tol.get("rtol")) and tol["rtol"] > 0, where,
                 f"{name!r}: 'rtol' must be a positive finite number")
        _require(_is_number(tol.get("float32_error")) and tol["float32_error"] >= 0, where,
                 f"{name!r}: 'float32_error' must be a non-negative finite number")
