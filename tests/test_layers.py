"""The layers import one way: every import inside refimpl/ follows LAYERS, one order of the packages.

Imports are read with ``ast`` (module level and inside functions, absolute and
relative), so a lazy import cannot hide an edge against the data flow.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "refimpl"

#: The layers, lowest first, one tuple per rank. A module may import its own layer and the layers of
#: lower ranks, never a layer of its own rank (peers) or above; the oracles are the one further rule
#: (ORACLE_IMPORTS). So there is no cycle between layers.
LAYERS = (
    ("foundation",),              # validate, metric, npzio, runtime
    ("ops",),
    ("config",),                  # config, params
    ("base_model",),
    ("rule",),
    ("meta_objective",),
    ("unroll",),
    ("reference",),               # the oracles, beside the library they check
    ("data",),
    ("pretrained",),              # the shipped rules (data) and their loader
    ("train",),
    ("evaluation", "golden"),
    ("paper",),                   # the paper's experiments, on top of the evaluation
    ("cli", "api"),               # the command line; the package namespace's lazily imported entry points
)
RANK = {layer: rank for rank, group in enumerate(LAYERS) for layer in group}

#: Module (or package) name -> layer. The longest matching name wins.
LAYER_OF = {
    "refimpl": "api",  # the package __init__ only: __version__ and the lazily imported entry points
    "refimpl.__version__": "foundation",   # ``import refimpl`` for its version or its path is no edge upwards
    "refimpl.__file__": "foundation",
    "refimpl.validate": "foundation",
    "refimpl.metric": "foundation",
    "refimpl.npzio": "foundation",
    "refimpl.runtime": "foundation",
    "refimpl.ops": "ops",
    "refimpl.config": "config",
    "refimpl.params": "config",
    "refimpl.base_model": "base_model",
    "refimpl.rule": "rule",
    "refimpl.meta": "meta_objective",      # the package __init__ (a docstring)
    "refimpl.meta.meta_objective": "meta_objective",
    "refimpl.meta.unroll": "unroll",
    "refimpl.reference": "reference",
    "refimpl.data": "data",
    "refimpl.pretrained": "pretrained",
    "refimpl.train": "train",
    "refimpl.evaluation": "evaluation",
    "refimpl.paper": "paper",
    "refimpl.golden": "golden",
    "refimpl.cli": "cli",
    "refimpl.__main__": "cli",
}

#: The oracles stay independent of the model and rule code they check: below config only.
ORACLE_IMPORTS = {"foundation", "ops", "config", "reference"}


def allowed(layer: str) -> set[str]:
    """The layers ``layer`` may import."""
    if layer == "reference":
        return ORACLE_IMPORTS
    return {low for group in LAYERS[:RANK[layer]] for low in group} | {layer}


ALLOWED = {layer: allowed(layer) for layer in RANK}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if module == "refimpl":
        return LAYER_OF[module]
    for n in range(len(parts), 1, -1):  # "refimpl" alone names only the package itself
        layer = LAYER_OF.get(".".join(parts[:n]))
        if layer is not None:
            return layer
    return None


def target_layer(name: str) -> str | None:
    """The layer of an imported name: ``refimpl.X`` that is no module is an entry point of the namespace."""
    layer = layer_of(name)
    if layer is None and name.count(".") == 1:
        return "api"
    return layer


def imported_modules(module: str, source: str, is_package: bool = False) -> set[str]:
    """Every refimpl module ``source`` (the text of ``module``) imports, relative imports resolved."""
    found = set()
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(source)
    bare = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "refimpl" and alias.asname is None:
                    bare = True    # judged by what it uses: refimpl.__version__, refimpl.update_step, ...
                else:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # ``from refimpl.x import y`` may name a submodule y: judge the deepest name.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    if bare:
        found.update(f"refimpl.{node.attr}" for node in ast.walk(tree)
                     if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                     and node.value.id == "refimpl")
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
            dst_layer = target_layer(target)
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


def test_every_package_has_a_layer():
    packages = {f"refimpl.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    modules = {f"refimpl.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert {name: layer_of(name) for name in sorted(packages | modules) if layer_of(name) is None} == {}
    assert set(LAYER_OF.values()) == set(RANK)


#: One module of each layer, for the synthetic edges below.
SAMPLE = {"foundation": "refimpl.validate", "ops": "refimpl.ops.conv", "config": "refimpl.params",
          "base_model": "refimpl.base_model.mlp", "rule": "refimpl.rule.topd",
          "meta_objective": "refimpl.meta.meta_objective", "unroll": "refimpl.meta.unroll",
          "reference": "refimpl.reference.registry", "data": "refimpl.data.registry",
          "pretrained": "refimpl.pretrained", "train": "refimpl.train.trainer",
          "evaluation": "refimpl.evaluation.suite", "golden": "refimpl.golden.catalog", "paper": "refimpl.paper.curves",
          "cli": "refimpl.cli.train", "api": "refimpl.update_step"}
EDGES = [(low, high) for low in RANK for high in RANK if RANK[low] < RANK[high]]
PEERS = [(a, b) for group in LAYERS for a in group for b in group if a != b]


def test_the_samples_are_real_modules_of_their_layers():
    sources = package_sources()
    for layer, module in SAMPLE.items():
        assert target_layer(module) == layer
        assert layer == "api" or module in sources, module


def _source_name(layer: str) -> str:
    return "refimpl" if layer == "api" else SAMPLE[layer]


def _importing(layer: str, target: str) -> dict:
    """A one-module tree: the sample module of ``layer``, whose whole source is ``import target``."""
    name = _source_name(layer)
    return {name: (f"import {target}", name in ("refimpl", "refimpl.pretrained"))}


@pytest.mark.parametrize("low, high", EDGES + PEERS, ids=[f"{a}->{b}" for a, b in EDGES + PEERS])
def test_every_upward_or_sideways_edge_is_caught(low, high):
    """For every pair of layers: an import from ``low`` of ``high`` (above it, or its peer) fails the test,
    and the same import the other way passes (unless the two are peers, or ``high`` is the oracles)."""
    bad = violations(_importing(low, SAMPLE[high]))
    assert len(bad) == 1 and bad[0].startswith(f"{_source_name(low)} ({low}) imports {SAMPLE[high]} ({high})"), bad
    downward = violations(_importing(high, SAMPLE[low]))
    expected_ok = (low, high) not in PEERS and (high != "reference" or low in ORACLE_IMPORTS)
    assert (downward == []) == expected_ok, downward


def module_cycles(sources: dict[str, tuple[str, bool]]) -> list[list[str]]:
    """Import cycles between the modules of ``sources`` (lazy imports included), each as a path m -> ... -> m."""
    names = set(sources)

    def owner(target: str) -> str | None:   # the module a name lives in
        while target and target not in names:
            target = target.rpartition(".")[0]
        return target or None

    graph = {m: sorted({owner(t) for t in imported_modules(m, *sources[m])} - {None, m}) for m in sources}
    done, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
        elif m not in done:
            stack.append(m)
            for n in graph[m]:
                visit(n)
            stack.pop()
            done.add(m)

    for m in sorted(graph):
        visit(m)
    return cycles


def test_no_module_reaches_itself_through_its_imports():
    assert module_cycles(package_sources()) == []


def test_a_cycle_is_found():
    sources = {"refimpl.train.a": ("def f():\n    from refimpl.train import b\n", False),
               "refimpl.train.b": ("from refimpl.train.a import f", False),
               "refimpl.train.c": ("from refimpl.train.b import f", False)}
    assert module_cycles(sources) == [["refimpl.train.a", "refimpl.train.b", "refimpl.train.a"]]


def test_import_refimpl_is_judged_by_what_it_uses():
    version = "import refimpl\nV = refimpl.__version__, refimpl.__file__"
    entry = "import refimpl\ndef f():\n    return refimpl.evaluate_rule\n"
    assert violations({"refimpl.golden.synthetic": (version, False)}) == []
    assert violations({"refimpl.golden.synthetic": (entry, False)}) == [
        "refimpl.golden.synthetic (golden) imports refimpl.evaluate_rule (api)"]


@pytest.mark.parametrize("source", [
    "from refimpl.reference.registry import OpInfo",
    "import refimpl.rule.topd",
    "def f():\n    from refimpl.meta import unroll\n",
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
