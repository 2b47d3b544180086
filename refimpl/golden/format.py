"""The golden-set format (docs/golden.md): the manifest's layout, reading a case file, the error metric
and the pass rules. NumPy, json and hashlib only: the port verifier (:mod:`refimpl.golden.verifier`)
reads sets through this module without importing refimpl's compute or autograd.

A golden set is a directory holding ``manifest.json`` and one ``.npz`` per
case. :func:`read_manifest` accepts only a manifest of this layout (any other
content is a :class:`GoldenError` naming what is wrong); :func:`read_case`
reads one case's arrays and checks them against their manifest entry.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np

from refimpl.metric import rel_error
from refimpl.npzio import little_endian, read_npz

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
DEFAULT_RTOL = 1e-6
#: SPEC 10: a float32 run passes an array when err <= max(1e-4, 3 x the recorded float32 error).
FLOAT32_FLOOR = 1e-4
FLOAT32_FACTOR = 3.0
#: A composed case is *small* (its float32 grads are enforced) when its config's batch size and every
#: layer size are at most this (the scale of the ``tiny`` preset); every primitive case is small.
SMALL_CASE_WIDTH = 16
ROLES = ("input", "output", "cotangent", "grad")
COMPARED_ROLES = ("output", "grad")
PREFIX = {"output": "out/", "cotangent": "cot/", "grad": "grad/"}

__all__ = ["SCHEMA_VERSION", "MANIFEST_FILE", "DEFAULT_RTOL", "FLOAT32_FLOOR", "FLOAT32_FACTOR",
           "SMALL_CASE_WIDTH", "ROLES", "COMPARED_ROLES", "GoldenError", "sha256_array", "rel_error",
           "float32_limit", "float64_limit", "is_small_case", "float32_enforced", "array_limit", "cast_floats",
           "read_manifest", "validate_manifest", "read_case", "split_roles"]


class GoldenError(ValueError):
    """A golden set, manifest or case file that cannot be read, written or judged."""


def sha256_array(a: np.ndarray) -> str:
    """The sha256 rule: the array's data bytes, little-endian, C order, no header."""
    return hashlib.sha256(little_endian(np.asarray(a)).tobytes()).hexdigest()


# ---------------------------------------------------------------- pass rules
def float64_limit(recorded_rtol: float) -> float:
    """The float64 limit: the manifest's rtol, which may only tighten the default."""
    return min(recorded_rtol, DEFAULT_RTOL)


def float32_limit(recorded_error: float, own_error: float = math.inf) -> float:
    """SPEC 10's float32 limit, ``max(1e-4, 3 x float32 error)``.

    The float32 error used is the one the manifest records; a verifier that can
    measure its own float32 error on the case (refimpl's check does) caps the
    recorded one at it, so a manifest can tighten the limit but never widen it.
    """
    return max(FLOAT32_FLOOR, FLOAT32_FACTOR * min(recorded_error, own_error))


def is_small_case(entry: dict) -> bool:
    """Primitive (no config), or batch size and every layer size at most :data:`SMALL_CASE_WIDTH`."""
    config = entry.get("config")
    if config is None:
        return True
    sizes = [config.get("batch_size", 0), *config.get("layer_sizes", [])]
    return all(isinstance(n, int) and n <= SMALL_CASE_WIDTH for n in sizes)


def float32_enforced(entry: dict, role: str) -> bool:
    """The float32 rule is enforced for outputs, and for grads of small cases; otherwise reported."""
    return role == "output" or is_small_case(entry)


def array_limit(entry: dict, name: str, float32: bool, own_float32_error: float = math.inf) -> tuple[float, bool]:
    """``(limit, enforced)`` for the stored array ``name`` of the case ``entry`` under the float64 rule,
    or the float32 rule when ``float32`` (``own_float32_error``: see :func:`float32_limit`)."""
    tol = entry["tolerances"][name]
    if not float32:
        return float64_limit(float(tol["rtol"])), True
    limit = float32_limit(float(tol.get("float32_error", 0.0)), own_float32_error)
    return limit, float32_enforced(entry, entry["arrays"][name]["role"])


def cast_floats(arrays: dict, dtype) -> dict:
    """``arrays`` with every floating-point array cast to ``dtype`` (the others unchanged)."""
    return {k: (v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v) for k, v in arrays.items()}


# ---------------------------------------------------------------- manifest
_SHA256 = re.compile(r"[0-9a-f]{64}")


def read_manifest(directory) -> dict:
    """The manifest of the golden set in ``directory``, checked against the layout of docs/golden.md."""
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
    except RecursionError:
        raise GoldenError(f"{path} is nested too deeply to read") from None
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
    """Raise :class:`GoldenError` naming the first field of ``manifest`` that breaks the layout."""
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
    name = entry["file"]
    _require(name == Path(name).name and "\\" not in name and name.endswith(".npz") and not name.startswith("."),
             where, f"'file' must be a plain .npz file name in the set's directory, not {name!r}")
    _require(isinstance(entry.get("attrs", {}), dict), where, "'attrs' must be an object")
    _require(entry.get("config") is None or isinstance(entry["config"], dict), where,
             "'config' must be an object or null")
    _require(entry.get("preset") is None or isinstance(entry["preset"], str), where,
             "'preset' (informational) must be a string when present")
    arrays = entry.get("arrays")
    _require(isinstance(arrays, dict) and arrays, where, "'arrays' must be a non-empty object")
    for array, meta in arrays.items():
        _require(isinstance(meta, dict), where, f"array {array!r} must be an object")
        role = meta.get("role")
        _require(role in ROLES, where, f"array {array!r} has role {role!r}, not one of {ROLES}")
        prefix = PREFIX.get(role)
        if prefix is None:
            _require(not array.startswith(tuple(PREFIX.values())) and array != "", where,
                     f"input {array!r} must not start with out/, cot/ or grad/")
        else:
            _require(array.startswith(prefix) and len(array) > len(prefix), where,
                     f"array {array!r} of role {role!r} must be named {prefix}<name>")
        shape = meta.get("shape")
        _require(isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                 for n in shape), where,
                 f"array {array!r}: 'shape' must be a list of non-negative integers")
        _require(isinstance(meta.get("dtype"), str), where, f"array {array!r}: 'dtype' must be a string")
        _require(isinstance(meta.get("sha256"), str) and _SHA256.fullmatch(meta["sha256"]) is not None, where,
                 f"array {array!r}: 'sha256' must be 64 lowercase hex digits")
    tolerances = entry.get("tolerances")
    _require(isinstance(tolerances, dict), where, "'tolerances' must be an object")
    for array, meta in arrays.items():
        if meta["role"] not in COMPARED_ROLES:
            continue
        tol = tolerances.get(array)
        _require(isinstance(tol, dict), where, f"'tolerances' has no entry for {array!r}")
        _require(_is_number(tol.get("rtol")) and tol["rtol"] > 0, where,
                 f"{array!r}: 'rtol' must be a positive finite number")
        f32 = tol.get("float32_error", 0.0)
        _require(_is_number(f32) and f32 >= 0, where, f"{array!r}: 'float32_error' must be a non-negative finite number")


# ---------------------------------------------------------------- case files
def read_case(directory, entry: dict) -> dict[str, np.ndarray]:
    """The arrays of one case, each checked against its manifest entry (shape, dtype, sha256).

    The file must lie in the set's directory (a symlink leading out of it is
    refused) and hold exactly the arrays the entry lists.
    """
    directory = Path(directory)
    path = directory / entry["file"]
    try:
        inside = path.resolve().parent == directory.resolve()
    except OSError as e:
        raise GoldenError(f"cannot resolve {path}: {e.strerror or e}") from None
    if not inside:
        raise GoldenError(f"{entry['file']} leads outside the set's directory")
    try:
        arrays = read_npz(path, what="golden case file")
    except OSError as e:
        raise GoldenError(f"cannot read {entry['file']}: {e.strerror or e}") from None
    listed = entry["arrays"]
    missing, extra = sorted(set(listed) - set(arrays)), sorted(set(arrays) - set(listed))
    if missing:
        raise GoldenError(f"arrays listed in the manifest are missing from {entry['file']}: {', '.join(missing)}")
    if extra:
        raise GoldenError(f"{entry['file']} holds arrays the manifest does not list: {', '.join(extra)}")
    for name, meta in listed.items():
        a = arrays[name]
        if list(a.shape) != meta["shape"] or str(a.dtype) != meta["dtype"]:
            raise GoldenError(f"array {name!r} is {a.dtype}{list(a.shape)}, the manifest says "
                              f"{meta['dtype']}{meta['shape']}")
        if sha256_array(a) != meta["sha256"]:
            raise GoldenError(f"array {name!r} does not match its sha256 in the manifest")
    return arrays


def split_roles(entry: dict, arrays: dict) -> tuple[dict, dict, dict]:
    """``(inputs, cotangents, expected)``: inputs by name, cotangents by output name (``cot/`` dropped),
    and the compared arrays (outputs and grads) by their stored names."""
    roles = {name: meta["role"] for name, meta in entry["arrays"].items()}
    inputs = {k: v for k, v in arrays.items() if roles[k] == "input"}
    cots = {k[len("cot/"):]: v for k, v in arrays.items() if roles[k] == "cotangent"}
    expected = {k: v for k, v in arrays.items() if roles[k] in COMPARED_ROLES}
    return inputs, cots, expected
