"""The code and test files the pages cite, as pages of the site, and the citations as links.

Derivations and the spec name their code and tests as inline literals: ``refimpl/ops/batchnorm.py``
or ``tests/test_fast_paths.py::test_conv_tap_form_equals_im2col``. Each such literal that names a
file of the repository becomes a link to a highlighted copy of that file (``_repo/<path>.html``,
lines numbered and anchored ``#L-<n>``); a ``::name`` suffix links to the line defining ``name``.
A literal that looks like a path but names no file is left as it is: the pages also name files
that a command writes.
"""
import html
import re
from pathlib import Path

from docutils import nodes
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename
from pygments.util import ClassNotFound

CITED = re.compile(r"^(?P<path>(?:refimpl|tests|examples|benchmarks)/[\w./-]+\.(?:py|json|md|toml))"
                   r"(?:::(?P<name>\w+))?")
PREFIX = "_repo/"


def _repo_root(app) -> Path:
    return Path(app.confdir).parent


def _definition_line(text: str, name: str) -> int | None:
    match = re.search(rf"^\s*(?:def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*=", text, re.M)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _cited(app, literal: nodes.literal):
    match = CITED.match(literal.astext())
    if match is None or not (_repo_root(app) / match["path"]).is_file():
        return None
    return match["path"], match["name"]


def record_citations(app, doctree) -> None:
    env = app.env
    if not hasattr(env, "repo_links_files"):
        env.repo_links_files = {}
    cited = {found[0] for literal in doctree.findall(nodes.literal) if (found := _cited(app, literal))}
    env.repo_links_files[env.docname] = cited


def purge(app, env, docname) -> None:
    getattr(env, "repo_links_files", {}).pop(docname, None)


def merge(app, env, docnames, other) -> None:
    env.repo_links_files = {**getattr(env, "repo_links_files", {}), **getattr(other, "repo_links_files", {})}


def link_citations(app, doctree, fromdocname) -> None:
    if app.builder.format != "html":
        return
    for literal in list(doctree.findall(nodes.literal)):
        if isinstance(literal.parent, nodes.reference):
            continue
        found = _cited(app, literal)
        if found is None:
            continue
        path, name = found
        uri = app.builder.get_relative_uri(fromdocname, PREFIX + path)
        if name:
            line = _definition_line((_repo_root(app) / path).read_text(encoding="utf-8"), name)
            if line is not None:
                uri += f"#L-{line}"
        reference = nodes.reference("", "", internal=True, refuri=uri, classes=["repo-link"])
        literal.replace_self(reference)
        reference += literal


def collect_pages(app):
    if app.builder.format != "html":
        return
    files = set().union(*getattr(app.env, "repo_links_files", {}).values())
    formatter = HtmlFormatter(linenos="inline", lineanchors="L", anchorlinenos=True, wrapcode=True)
    for path in sorted(files):
        text = (_repo_root(app) / path).read_text(encoding="utf-8")
        try:
            lexer = get_lexer_for_filename(path)
        except ClassNotFound:
            lexer = get_lexer_for_filename("x.txt")
        body = (f"<h1><code>{html.escape(path)}</code></h1>\n"
                f"<p>The file as it is in this version of the repository.</p>\n"
                f'<div class="highlight">{highlight(text, lexer, formatter)}</div>')
        yield PREFIX + path, {"title": path, "body": body, "parents": []}, "page.html"


def setup(app):
    app.connect("doctree-read", record_citations)
    app.connect("env-purge-doc", purge)
    app.connect("env-merge-info", merge)
    app.connect("doctree-resolved", link_citations)
    app.connect("html-collect-pages", collect_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
