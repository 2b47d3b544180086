"""Sphinx configuration of refimpl's documentation site (`make docs`).

The source directory is the repository root (``sphinx-build -c docs . docs/_build/html``), so the
Markdown pages stay where they are (docs/, derivations/, PORTING.md) and their relative links
resolve on the site exactly as they do in a repository viewer. ``include_patterns`` names the
pages; everything else in the tree is not read.

Offline: no page loads anything from the network. MathJax 3 is shipped by the
``sphinx-mathjax-offline`` package (copied into ``_static/mathjax``), and intersphinx is not
used; references to NumPy and the standard library in docstrings are ignored by nitpicky mode
through ``nitpick_ignore_regex`` below.
"""
import os
import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent
REPO = CONF_DIR.parent
sys.path.insert(0, str(CONF_DIR / "_ext"))
sys.path.insert(0, str(REPO))

import refimpl  # noqa: E402

project = "refimpl"
author = "refimpl contributors"
copyright = "refimpl contributors"
release = version = refimpl.__version__

root_doc = "docs/index"
include_patterns = [
    "docs/*.md",
    "docs/transfer/**/*.md",
    "derivations/*.md",
    "PORTING.md",
    "examples/walkthrough.py",
    "refimpl/pretrained/rules/*.md",     # the shipped rules' cards, which the results page cites
]
exclude_patterns = [".git", ".venv", "docs/_build", "runs", "**/__pycache__", ".hypothesis", "*.egg-info",
                    "tests/golden", "build"]

extensions = [
    "myst_nb",                    # MyST Markdown pages and the executed walkthrough notebook
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",        # NumPy-style docstrings
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",     # ships MathJax 3 into _static/mathjax: no CDN at view time
    "sphinxarg.ext",              # the command line, from its argparse parsers
    "repo_links",                 # the code and test files the pages cite, as pages of the site
    "optional_pages",
]

# MyST: GitHub's $...$ / $$...$$ maths, and heading anchors so that links to #sections resolve.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 4
myst_dmath_double_inline = True

# The walkthrough is a jupytext percent script, executed at every build in its fast mode
# (a few seconds of meta-training instead of a minute). An error in it fails the build.
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "force"
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
os.environ["REFIMPL_WALKTHROUGH_FAST"] = "1"   # inherited by the notebook's kernel
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# API reference: NumPy-style docstrings, signatures in the order the source gives.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
# Annotations are strings (``from __future__ import annotations``): show the aliases as written.
autodoc_type_aliases = {"npt.DTypeLike": "numpy.typing.DTypeLike", "npt.ArrayLike": "numpy.typing.ArrayLike"}

# Nitpicky mode (-n) runs without intersphinx (no network): names from NumPy, the standard
# library and the shapes written in docstring type fields have no target on this site.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|numpy\.typing|npt)(\..*)?"),
    (r"py:.*", r"(ndarray|ArrayLike|NDArray|DTypeLike|dtype|Generator|RandomState)"),
    (r"py:.*", r"(argparse|collections\.abc|typing|pathlib|os|io|concurrent\.futures)\..*"),
    (r"py:.*", r"(Path|PathLike|Callable|Iterable|Iterator|Mapping|Sequence|Any|NamedTuple|Namespace)"),
    (r"py:class", r"(optional|default.*|shape.*|array.*|array_like|path-like|scalar|callable|mapping|sequence|"
               r"of|or|and|\[.*\]|\(.*\)|[A-Z0-9, ]+)"),
    # what a type field says beside the types: "ndarray, shape [B, N^0]", "[K k, K + n_reg]",
    # "str or path-like", "{'theta', 'phi'}": shape letters and words, never names of objects
    (r"py:class", r"[A-Z](\^(\w|\{[\w+-]+\}))?"),
    (r"py:class", r"[a-z_][a-z0-9_-]*"),
    (r"py:class", r".*[^\w.].*"),
    # the constructor's argument of Dataset: the sources are internal to refimpl.data
    (r"py:class", r"refimpl\.data\.base\.Source"),
    # the type variable of JsonFields' constructors (Config.from_json returns a Config)
    (r"py:class", r"refimpl\.config\._Fields"),
]

html_theme = "furo"
html_title = f"refimpl {release}"
html_static_path = ["_static"]
html_extra_path = ["_extra"]          # index.html at the site's root: a redirect to docs/index.html
html_show_sourcelink = False
html_copy_source = False

# The pages write names with underscores inside \text{...} (\text{inv\_std}); MathJax's textmacros
# package (shipped in the offline bundle) processes such macros in text mode, as GitHub does.
mathjax3_config = {
    "loader": {"load": ["[tex]/textmacros"]},
    "tex": {"packages": {"[+]": ["textmacros"]}},
}


def setup(app):
    # MathJax on every page: the sidebar's titles carry maths on pages that have none of their own.
    app.set_html_assets_policy("always")
