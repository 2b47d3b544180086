"""The site's link checker (docs/check_links.py) on small hand-written sites: a clean site passes, and
each kind of fault it guards against (a missing page, a missing anchor, a resource loaded from the
network, a link out of the site) is reported."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("check_links", ROOT / "docs" / "check_links.py")
check_links = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_links)

CLEAN = {
    "index.html": '<html><head><link rel="stylesheet" href="_static/s.css">'
                  '<link rel="canonical" href="https://example.org/index.html"></head>'
                  '<body><a href="docs/page.html#eq-1">eq</a> <a href="https://example.org/">out</a>'
                  '<a href="#top" id="top">top</a> <img src="_static/fig.png"> <a href="mailto:a@b.c">m</a></body></html>',
    "docs/page.html": '<html><body><span id="eq-1"></span><a href="../index.html">home</a>'
                      '<a name="legacy"></a><a href="page.html#legacy">x</a><a href="docs-dir/">d</a></body></html>',
    "docs/docs-dir/index.html": "<html><body>index of a folder</body></html>",
    "_static/s.css": "body {}",
    "_static/fig.png": "",
}


def write_site(root: Path, files: dict) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_clean_site_passes(tmp_path):
    site = write_site(tmp_path, CLEAN)
    assert check_links.check_site(site) == []
    assert check_links.main([str(site)]) == 0


@pytest.mark.parametrize("page, old, new, reported", [
    ("docs/page.html", "../index.html", "../missing.html", "no such file missing.html"),
    ("index.html", "docs/page.html#eq-1", "docs/page.html#eq-2", "no anchor #eq-2 in docs/page.html"),
    ("index.html", 'href="#top"', 'href="#bottom"', "no anchor #bottom in index.html"),
    ("index.html", "_static/fig.png", "_static/gone.png", "no such file _static/gone.png"),
    ("index.html", "_static/s.css", "https://cdn.example.org/s.css", "loads https://cdn.example.org/s.css"),
    ("index.html", '<img src="_static/fig.png">', '<script src="//cdn.example.org/m.js"></script>', "from the network"),
    ("docs/page.html", "../index.html", "../../outside.html", "points outside the site"),
])
def test_each_fault_is_reported(tmp_path, capsys, page, old, new, reported):
    files = dict(CLEAN)
    assert old in files[page]
    files[page] = files[page].replace(old, new)
    site = write_site(tmp_path, files)
    problems = check_links.check_site(site)
    assert len(problems) == 1 and reported in problems[0] and problems[0].startswith(page), problems
    assert check_links.main([str(site)]) == 1
    assert reported in capsys.readouterr().out


def test_a_folder_without_a_built_site_is_refused(tmp_path, capsys):
    assert check_links.main([str(tmp_path)]) == 2
    assert "build the site first" in capsys.readouterr().err
