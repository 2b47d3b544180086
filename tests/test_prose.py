"""Code comments say why; measurements of one machine live in benchmarks/RESULTS.md.

Reads every comment and docstring of refimpl/ (tokenize and ast, not the code) and fails on the
phrasings a timing or a speed-up takes ("3.1 s instead of 0.24 s", "~10x faster", "took 31 s",
"1 ms at paper size"). A comment may still link the measurement: benchmarks/RESULTS.md, "section".
"""
import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_NUMBER_UNIT = r"\d+(?:\.\d+)?\s?(?:ms|s|seconds|minutes|MB|GB|MiB|KiB|GiB)\b"
MEASUREMENT = re.compile(
    rf"{_NUMBER_UNIT}[^.;]*\binstead of\b"                      # "3.1 s instead of 0.24 s"
    rf"|\b(?:took|takes|measured)\b[^.;]*?{_NUMBER_UNIT}"       # "took 31 s", "measured: 16 ms"
    rf"|{_NUMBER_UNIT} at (?:the )?paper size"                   # "~1 ms at paper size"
    r"|\b\d+(?:\.\d+)?x (?:faster|slower)\b"                    # "~10x faster"
    r"|\b(?:two|three|five|ten|many) times (?:faster|slower)\b",
    re.I)


def comments_and_docstrings(source: str):
    """(line, text) of every comment and every module, class and function docstring."""
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield getattr(node, "lineno", 1), doc


@pytest.mark.parametrize("text, found", [
    ("one unroll took 3.1 s instead of 0.24 s on this machine", True),
    ("# eq. 1; ~10x faster than np.where", True),
    ("as four gathers (about ten times faster)", True),
    ("costs one im2col in the backward (~1 ms at paper size)", True),
    ("the demo's digits seed took 31 s with the default pool", True),
    ('# not np.where: benchmarks/RESULTS.md, "relu: np.maximum"', False),
    ("The default 3.5 minutes reach the point where J starts to fall", False),
    ("--timeout seconds (default 30)", False),
])
def test_the_measurement_check_can_fail(text, found):
    assert bool(MEASUREMENT.search(text)) is found


def test_no_code_comment_carries_a_measurement():
    hits = [f"{path.relative_to(ROOT)}:{line}: {m.group(0)!r}"
            for path in sorted((ROOT / "refimpl").rglob("*.py"))
            for line, text in comments_and_docstrings(path.read_text())
            for m in MEASUREMENT.finditer(text)]
    assert not hits, "move these to benchmarks/RESULTS.md and link the section: " + "; ".join(hits)
