"""Checks of the built documentation site (``make docs-test``, after ``make docs``; marked ``docs``, so
the default test run leaves them out).

- A page with maths, opened in headless Chromium, is typeset by the MathJax the site ships: MathJax's
  output elements are there and no TeX delimiter is left in the page's text. The same check on the
  page with JavaScript off must fail, which shows that it can.
- The walkthrough page carries the notebook's executed outputs and figures.
- The build itself fails on a page with a broken link, and passes once the link is fixed.
"""
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "docs" / "_build" / "html"
MATHS_PAGE = SITE / "derivations" / "batchnorm.html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TEX_LEFT = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{")

needs_site = pytest.mark.skipif(not (SITE / "index.html").is_file(),
                                reason="the site is not built: run make docs first")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                    "(apt-get install -y chromium): the browser check cannot run")


class _Text(HTMLParser):
    """The page's text outside code, scripts and styles, and the names of its elements."""
    SKIP = {"script", "style", "code", "pre", "textarea"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth, self.text, self.tags = 0, [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.depth += tag in self.SKIP

    def handle_endtag(self, tag):
        self.depth -= tag in self.SKIP and self.depth > 0

    def handle_data(self, data):
        if not self.depth:
            self.text.append(data)


def typesetting_problems(dom: str) -> list[str]:
    """What shows that the maths of a rendered page was not typeset (empty when it was)."""
    page = _Text()
    page.feed(dom)
    problems = [f"raw TeX left in the text: ...{m.group(0)}..." for m in TEX_LEFT.finditer("".join(page.text))][:3]
    if page.tags.count("mjx-container") == 0:
        problems.append("no MathJax output element (mjx-container) in the page")
    return problems


def rendered_dom(page: Path, tmp_path: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium (no network, a fresh profile)."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000",
               "--dump-dom", page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@needs_site
@needs_chromium
def test_maths_in_the_sidebar_is_typeset_on_a_page_without_maths(tmp_path):
    """The derivations' titles carry maths; MathJax must run on every page, not only on pages with maths."""
    page = SITE / "docs" / "api.html"
    assert TEX_LEFT.search(page.read_text()), "the sidebar should list a title with maths"
    assert typesetting_problems(rendered_dom(page, tmp_path)) == []


@needs_site
@needs_chromium
def test_maths_is_typeset_in_a_headless_browser(tmp_path):
    static = MATHS_PAGE.read_text()
    assert typesetting_problems(static), "the built page should hold raw TeX until MathJax runs"
    dom = rendered_dom(MATHS_PAGE, tmp_path)
    assert typesetting_problems(dom) == []
    # every display equation of the page was typeset, not only some
    assert dom.count('display="true"') >= static.count('<div class="math notranslate nohighlight">') > 3


@needs_site
@needs_chromium
def test_the_typesetting_check_fails_without_mathjax(tmp_path):
    page = MATHS_PAGE.read_text()
    without = re.sub(r'<script[^>]*src="[^"]*mathjax[^"]*"[^>]*></script>', "", page, flags=re.I)
    assert without != page
    copy = MATHS_PAGE.parent / f".without-mathjax-{os.getpid()}.html"     # beside the page: same relative paths
    copy.write_text(without)
    try:
        dom = rendered_dom(copy, tmp_path)
    finally:
        copy.unlink()
    problems = typesetting_problems(dom)
    assert any("raw TeX" in p for p in problems) and any("mjx-container" in p for p in problems)


@needs_site
def test_mathjax_is_shipped_with_the_site():
    page = MATHS_PAGE.read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page, flags=re.I)
    assert scripts and all("://" not in s for s in scripts), scripts
    assert all((MATHS_PAGE.parent / s.split("?")[0]).is_file() for s in scripts)


@needs_site
def test_the_walkthrough_page_shows_its_executed_outputs():
    page = (SITE / "examples" / "walkthrough.html").read_text()
    outputs = page.count('class="cell_output')
    figures = len(re.findall(r'<img[^>]+src="[^"]*_images/[^"]+\.png"', page))
    assert outputs >= 8 and figures >= 5, (outputs, figures)
    assert "Traceback" not in page


@needs_site
def test_every_derivation_links_the_code_and_a_test_it_names():
    pages = sorted((SITE / "derivations").glob("*.html"))
    assert len(pages) > 30
    for page in pages:
        if page.name == "README.html":
            continue
        links = re.findall(r'href="\.\./_repo/([^"#]+)\.html(?:#L-\d+)?"', page.read_text())
        assert any(p.startswith("refimpl/") for p in links), f"{page.name} links no code"
        assert any(p.startswith("tests/") for p in links), f"{page.name} links no test"
    # a test named with ::name links to the line that defines it
    fast = (SITE / "derivations" / "conv_batch.html").read_text()
    line = re.search(r'_repo/tests/test_fast_paths\.py\.html#L-(\d+)"', fast)
    source = (ROOT / "tests" / "test_fast_paths.py").read_text().splitlines()
    assert line and source[int(line.group(1)) - 1].lstrip().startswith("def test_conv_tap_form_equals_im2col")


BROKEN_PAGE = """# A page

A [good link](other.md) and a {link}.

```{{toctree}}
:hidden:

other
```
"""


def build(srcdir: Path, outdir: Path) -> subprocess.CompletedProcess:
    """Build srcdir with the site's own configuration, nitpicky and warnings as errors, as make docs does."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sphinx", "-n", "-W", "-q", "-b", "html", "-c", str(ROOT / "docs"),
                           str(srcdir), str(outdir)], capture_output=True, text=True, timeout=600, env=env)


def test_the_build_fails_on_a_broken_link_and_passes_when_fixed(tmp_path):
    pytest.importorskip("sphinx", reason="the docs extra is not installed: make docs installs it")
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "other.md").write_text("# Other\n\nBack to [the page](index.md#a-page).\n")
    (src / "docs" / "index.md").write_text(BROKEN_PAGE.format(link="[broken link](missing-page.md)"))
    broken = build(src, tmp_path / "out-broken")
    assert broken.returncode != 0
    assert "missing-page.md" in broken.stderr, broken.stderr[-2000:]
    (src / "docs" / "index.md").write_text(BROKEN_PAGE.format(link="[second link](other.md#other)"))
    fixed = build(src, tmp_path / "out-fixed")
    assert fixed.returncode == 0, fixed.stderr[-2000:]
