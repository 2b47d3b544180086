"""The public API's docstrings: NumPy style, every name in the API reference, their examples run."""
import doctest
import re
from pathlib import Path

import numpy as np
import pytest

import refimpl

ROOT = Path(__file__).resolve().parent.parent
API_PAGE = ROOT / "docs" / "api.md"
SECTION = re.compile(r"^\s*(Parameters|Returns|Attributes)\n\s*-{3,}$", re.M)


@pytest.mark.parametrize("name", refimpl.__all__)
def test_every_public_name_has_a_numpy_style_docstring_in_the_reference(name):
    doc = getattr(refimpl, name).__doc__ or ""
    assert SECTION.search(doc), f"refimpl.{name}: no Parameters/Returns/Attributes section"
    assert re.search(rf"^\.\. auto\w+:: refimpl\.{name}$", API_PAGE.read_text(), re.M), \
        f"refimpl.{name} is not in docs/api.md"


def test_the_section_check_can_fail():
    assert not SECTION.search("One line.\n\n    x: the input [B, N].\n")
    assert SECTION.search("One line.\n\n    Returns\n    -------\n    int\n")


EXAMPLES = [refimpl.Config, refimpl.update_step, refimpl.get_dataset, refimpl.load_rule,
            refimpl.evaluate_rule]


@pytest.mark.parametrize("obj", EXAMPLES, ids=lambda o: o.__name__)
def test_docstring_examples_run(obj):
    tests = doctest.DocTestFinder(recurse=False).find(obj, globs={"np": np})
    examples = [t for t in tests if t.examples]
    assert examples, f"{obj.__name__} has no example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in examples:
        runner.run(test)
    assert runner.failures == 0
