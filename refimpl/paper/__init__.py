"""The paper's experiments at small scale, for any rule: one function (and one ``refimpl paper`` command)
per figure, each writing a table (Markdown and JSON) and a figure.

    from refimpl.paper import run_experiment
    report = run_experiment("inner-steps", "small-glyphs-rotation", out_dir="runs/paper", quick=True)

Every table carries phi_0 and a random-theta control (SPEC 9 ``init_theta``,
:func:`refimpl.paper.common.control_rule`) evaluated on the same seeds, and
states its seeds, its standard errors (paired per seed) and its budget.
:mod:`refimpl.paper.page` turns the JSON into ``docs/paper.md`` with a
verdict per claim.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class Experiment(NamedTuple):
    name: str
    module: str       # refimpl.paper.<module>
    function: str
    budget: str       # the module constant that states it
    figure: str       # the paper's figure it follows
    summary: str


EXPERIMENTS = {e.name: e for e in (
    Experiment("inner-steps", "curves", "inner_steps", "INNER_STEPS_BUDGET", "Fig. 5",
               "accuracy from 0 to 3000 inner steps on digits, moons, Fashion-MNIST 14x14 and 28x28, "
               "against phi_0, raw, ink, PCA, VAE and supervised, with the effective rank"),
    Experiment("width-depth", "architectures", "width_depth", "WIDTH_DEPTH_BUDGET", "Fig. 7",
               "gain over phi_0 of the same architecture for hidden widths 32-2048 and depths 1-8 (sparse grid)"),
    Experiment("activations", "curves", "activations", "ACTIVATIONS_BUDGET", "Fig. 8",
               "the 8 activations of SPEC 2, accuracy over inner steps against phi_0 of the same activation"),
    Experiment("shots", "curves", "shots", "SHOTS_BUDGET", "(Fig. 5, 10 shots)",
               "1, 5, 10 and 20 labeled examples per class"),
    Experiment("manifold", "representation", "manifold", "MANIFOLD_BUDGET", "Fig. 6 centre/right, Fig. 10",
               "top-3-PC projections before and after the rule and the cumulative variance explained, "
               "two moons and digits"),
    Experiment("filters", "representation", "filters", "FILTERS_BUDGET", "Fig. 6 left, App. D",
               "first-layer receptive fields, input permutation undone, with template scores"),
    Experiment("permutation", "permutation", "permutation", "PERMUTATION_BUDGET", "Sec. 3 / 5",
               "the same evaluation with and without a random input permutation, and the exact equivariance check"),
)}


def _module(e: Experiment):
    import importlib
    return importlib.import_module(f"refimpl.paper.{e.module}")


def experiment_function(name: str) -> Callable:
    """The Python function of experiment ``name``: ``f(rule, out_dir=None, *, quick=False, progress=True)``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return getattr(_module(EXPERIMENTS[name]), EXPERIMENTS[name].function)


def budget(name: str) -> str:
    """The stated budget of experiment ``name`` (its full mode)."""
    e = EXPERIMENTS[name]
    return getattr(_module(e), e.budget)


def run_experiment(name: str, rule="small-glyphs-rotation", out_dir=None, *, quick: bool = False,
                   progress: bool = True, **kwargs) -> dict:
    """Run one experiment; with ``out_dir``, write ``<name>.json``, ``.md`` and ``.png`` there."""
    return experiment_function(name)(rule, out_dir, quick=quick, progress=progress, **kwargs)


#: experiment -> (module, Markdown function, figure function): both take the report (its JSON) alone.
RENDERERS = {"inner-steps": ("curves", "inner_steps_markdown", "inner_steps_figure"),
             "width-depth": ("architectures", "width_depth_markdown", "width_depth_figure"),
             "activations": ("curves", "activations_markdown", "activations_figure"),
             "shots": ("curves", "shots_markdown", "shots_figure"),
             "manifold": ("representation", "manifold_markdown", "manifold_figure"),
             "filters": ("representation", "filters_markdown", "filters_figure"),
             "permutation": ("permutation", "permutation_markdown", "permutation_figure")}


def render(report: dict, out_dir) -> dict:
    """Write a report's table (JSON and Markdown) and figure again from the report alone."""
    import importlib

    from refimpl.paper.common import write_outputs

    module, md, fig = RENDERERS[report["experiment"]]
    m = importlib.import_module(f"refimpl.paper.{module}")
    report = {k: v for k, v in report.items() if k != "paths"}
    return write_outputs(report, getattr(m, md)(report), getattr(m, fig)(report), out_dir)


def run_all(rule="small-glyphs-rotation", out_dir=None, *, quick: bool = False, progress: bool = True,
            names=None, run_dir=None) -> dict:
    """Every experiment (or ``names``) in order, with a progress line before and after each."""
    import sys
    import time

    names = list(names or EXPERIMENTS)
    reports, t0 = {}, time.perf_counter()
    for i, name in enumerate(names, 1):
        if progress:
            print(f"paper all: [{i}/{len(names)}] {name} (budget: {budget(name)})", file=sys.stderr, flush=True)
        kw = {"run_dir": run_dir} if name == "filters" and run_dir is not None else {}
        reports[name] = run_experiment(name, rule, out_dir, quick=quick, progress=progress, **kw)
        if progress:
            print(f"paper all: [{i}/{len(names)}] {name} done in {reports[name]['seconds']:.0f} s "
                  f"({reports[name]['cpu_seconds']:.0f} s of CPU) "
                  f"(total {time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return reports
