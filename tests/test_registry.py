"""Nothing is forgotten: every operator defined in refimpl/ops has a registry
entry, a backward, a derivation that names its test, and a golden case."""
import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import pytest

import refimpl.ops
from refimpl.reference.registry import all_ops

ROOT = Path(__file__).resolve().parent.parent

def defined_forwards():
    found = []
    for mod in pkgutil.iter_modules(refimpl.ops.__path__):
        module = importlib.import_module(f"refimpl.ops.{mod.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.endswith("_forward") and fn.__module__ == module.__name__:
                found.append((module, name, fn))
    return found


def test_there_are_operators():
    assert len(defined_forwards()) >= 1 and len(all_ops()) >= 1


@pytest.mark.parametrize("module,name,fn", defined_forwards(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_every_forward_is_registered_with_backward(module, name, fn):
    entries = [op for op in all_ops() if op.forward is fn]
    assert entries, f"{module.__name__}.{name} has no registry entry (add one to refimpl/reference/)"
    backward = getattr(module, name[: -len("_forward")] + "_backward", None)
    assert backward is not None, f"{module.__name__}.{name} has no matching _backward"
    assert all(op.backward is backward for op in entries)


@pytest.mark.parametrize("op", all_ops(), ids=lambda op: op.name)
def test_every_operator_has_a_derivation_naming_its_test(op):
    path = ROOT / op.derivation
    assert op.derivation and path.is_file(), f"{op.name}: derivation {op.derivation!r} missing"
    text = path.read_text()
    assert "Which test checks it" in text, f"{op.derivation} lacks the 'Which test checks it' section"
    tests_named = re.findall(r"tests/[\w/]+\.py", text)
    assert tests_named, f"{op.derivation} names no test file"
    for t in tests_named:
        assert (ROOT / t).is_file(), f"{op.derivation} names {t}, which does not exist"


def test_derivations_index_lists_every_derivation():
    index = (ROOT / "derivations" / "README.md").read_text()
    for op in all_ops():
        assert Path(op.derivation).name in index, f"derivations/README.md does not list {op.derivation}"


def test_committed_golden_set_covers_every_operator():
    manifest = json.loads((ROOT / "tests" / "golden" / "manifest.json").read_text())
    names = {case["name"] for case in manifest["cases"]}
    missing = [op.name for op in all_ops() if op.name not in names]
    assert not missing, f"tests/golden lacks {missing}: run `make golden`"
