"""Pages that other work adds (the results page, the paper experiments page) join the toctree once
they exist, without a placeholder: a toctree line ``% optional: docs/results`` becomes the entry
``/docs/results`` when that page is present, and disappears otherwise.
"""
import re
from pathlib import Path

MARK = re.compile(r"^% optional: (?P<doc>\S+)\s*$", re.M)


def add_present_pages(app, docname, source) -> None:
    root = Path(app.srcdir)

    def entry(match):
        doc = match["doc"]
        return doc if any((root / (doc + suffix)).is_file() for suffix in (".md", ".rst")) else ""

    source[0] = MARK.sub(lambda m: "/" + entry(m) if entry(m) else "", source[0])


def setup(app):
    app.connect("source-read", add_present_pages)
    return {"parallel_read_safe": True}
