"""The layers import one way: every import inside refimpl/ follows the table of allowed edges.

Imports are read with ``ast`` (module level and inside functions, absolute and
relative), so a lazy import cannot hide an edge against the data flow.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "refimpl"

#: Module (or package) name -> layer. The longest matching name wins.
LAYER_OF = {
    "refimpl": "api",  # the package __init__ only: __version__ and the lazily imported entry points
    "refimpl.validate": "foundation",
    "refimpl.metric": "foundation",
    "refimpl.npzio": "foundation",
    "refimpl.ops": "ops",
    "refimpl.config": "config",
    "refimpl.params": "config",
    "refimpl.reference": "reference",
    "refimpl.model.base_model": "base_model",
    "refimpl.rule": "rule",
    "refimpl.model.meta_objective": "meta_objective",
    "refimpl.model.unroll": "unroll",
    "refimpl.model": "model_package",
    "refimpl.data": "data",
    "refimpl.train": "tooling",
    "refimpl.evaluation": "tooling",
    "refimpl.paper": "tooling",
    "refimpl.pretrained": "tooling",
    "refimpl.golden": "tooling",
    "refimpl.cli": "tooling",
    "refimpl.__main__": "tooling",
}

_FOUNDATION = {"foundation"}
_BELOW_MODEL = _FOUNDATION | {"ops", "config"}
#: Layer -> the layers it may import (itself included where it may).
ALLOWED = {
    "foundation": _FOUNDATION,
    "ops": _FOUNDATION | {"ops"},
    "config": _BELOW_MODEL,
    # The oracles stay independent of the model and rule code they check.
    "reference": _BELOW_MODEL | {"reference"},
    "base_model": _BELOW_MODEL,
    "rule": _BELOW_MODEL | {"base_model", "rule"},
    "meta_objective": _BELOW_MODEL | {"base_model", "rule"},
    "unroll": _BELOW_MODEL | {"base_model", "rule", "meta_objective"},
    "model_package": _FOUNDATION,
    "data": _FOUNDATION | {"data"},
    # ``import refimpl`` imports nothing; its entry points (imported on first use) reach down to unroll,
    # and up to the evaluation tooling for the shipped rules and ``evaluate_rule``.
    "api": _BELOW_MODEL | {"base_model", "rule", "meta_objective", "unroll", "data", "model_package", "tooling"},
    "tooling": set(LAYER_OF.values()),
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if module == "refimpl":
        return LAYER_OF[module]
    for n in range(len(parts), 1, -1):  # "refimpl" alone names only the package itself
        layer = LAYER_OF.get(".".join(parts[:n]))
        if layer is not None:
            return layer
    return None


def imported_modules(module: str, source: str, is_package: bool = False) -> set[str]:
    """Every refimpl module ``source`` (the text of ``module``) imports, relative imports resolved."""
    found = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # ``from refimpl.x import y`` may name a submodule y: judge the deepest name.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "refimpl" or name.startswith("refimpl.")}


def violations(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """Edges against the table, for ``{module: (source, is_package)}``."""
    bad = []
    for module, (source, is_package) in sorted(sources.items()):
        src_layer = layer_of(module)
        if src_layer is None:
            bad.append(f"{module}: no layer in LAYER_OF (add it to tests/test_layers.py)")
            continue
        for target in sorted(imported_modules(module, source, is_package)):
            dst_layer = layer_of(target)
            if dst_layer not in ALLOWED[src_layer]:
                bad.append(f"{module} ({src_layer}) imports {target} ({dst_layer})")
    return bad


def package_sources() -> dict[str, tuple[str, bool]]:
    sources = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        sources[name] = (path.read_text(), is_package)
    return sources


def test_every_import_follows_the_layer_table():
    sources = package_sources()
    assert "refimpl.ops.conv" in sources and "refimpl.rule.update_step" in sources
    assert violations(sources) == []


@pytest.mark.parametrize("source", [
    "from refimpl.reference.registry import OpInfo",
    "import refimpl.rule.topd",
    "def f():\n    from refimpl.model import unroll\n",
    "from ..reference import registry",
    "from .. import params",
])
def test_an_upward_import_from_ops_is_caught(source):
    sources = package_sources()
    sources["refimpl.ops.synthetic"] = (source, False)
    found = violations(sources)
    assert len(found) == 1 and found[0].startswith("refimpl.ops.synthetic (ops) imports"), found


def test_the_oracles_may_not_import_the_code_they_check():
    sources = {"refimpl.reference.synthetic": ("from refimpl.rule.topd import topd_forward", False)}
    assert violations(sources) == ["refimpl.reference.synthetic (reference) imports "
                                   "refimpl.rule.topd.topd_forward (rule)"]


def test_a_module_without_a_layer_is_reported():
    assert violations({"refimpl.newthing": ("import numpy", False)}) == [
        "refimpl.newthing: no layer in LAYER_OF (add it to tests/test_layers.py)"]


def test_allowed_imports_pass():
    sources = {"refimpl.ops.synthetic": ("from refimpl.validate import fail\nfrom . import conv\nimport numpy", False),
               "refimpl.data.synthetic": ("from .base import Dataset", False)}
    assert violations(sources) == []


def test_import_refimpl_stays_light():
    """The package namespace imports its entry points only when one is first used."""
    import subprocess
    import sys
    code = ("import sys, refimpl; heavy = [m for m in ('refimpl.config', 'refimpl.rule', 'autograd', 'scipy') "
            "if m in sys.modules]; assert not heavy, heavy; refimpl.update_step; "
            "assert 'refimpl.rule.update_step' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
