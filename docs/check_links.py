"""Check a built HTML site: every internal link resolves, and no page loads anything remote.

    python docs/check_links.py docs/_build/html

For every ``href`` and ``src`` of every page: a link to a file of the site must name a file that
exists, and a ``#fragment`` must name an ``id`` (or ``name``) in its target page. Links to other
sites (``https:``, ``mailto:``) are not followed, since the site is read offline, but a *resource*
loaded from one (a script, a stylesheet, an image, a frame) is an error: the page would not work
offline. Prints one line per problem and exits 1 if there is any, 0 otherwise.
"""
import argparse
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Attributes that the browser loads as it shows the page (not links a reader may follow).
LOADED = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"), ("source", "src"),
          ("video", "src"), ("audio", "src"), ("embed", "src"), ("object", "data")}
FOLLOWED = {("a", "href"), ("area", "href")}


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str, str]] = []     # (tag, attribute, value)

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "a" and values.get("name"):
            self.ids.add(values["name"])
        for attribute in ("href", "src", "data"):
            if (tag, attribute) in LOADED | FOLLOWED and values.get(attribute) is not None:
                # <link rel="canonical|alternate"> is a link, not a resource
                loaded = (tag, attribute) in LOADED and not (tag == "link" and values.get("rel") in
                                                              ("canonical", "alternate", "author", "license"))
                self.links.append((tag, "loaded" if loaded else "followed", values[attribute]))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def check_site(root: Path) -> list[str]:
    """Return one line per broken link or remote resource of the HTML site under ``root``."""
    root = root.resolve()
    pages = {path: _parse(path) for path in sorted(root.rglob("*.html"))}
    problems = []
    for path, page in pages.items():
        where = path.relative_to(root)
        for tag, how, value in page.links:
            parts = urlsplit(value.strip())
            if parts.scheme in ("data", "javascript") or value.strip() in ("", "#"):
                continue
            if parts.scheme or parts.netloc:
                if how == "loaded":
                    problems.append(f"{where}: <{tag}> loads {value} from the network (the site must work offline)")
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if parts.path.endswith("/") or target.is_dir():
                target = target / "index.html"
            if root not in (target, *target.parents):
                problems.append(f"{where}: {value} points outside the site")
                continue
            if not target.is_file():
                problems.append(f"{where}: {value}: no such file {target.relative_to(root)}")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                target_page = pages.get(target) or _parse(target)
                if fragment not in target_page.ids:
                    problems.append(f"{where}: {value}: no anchor #{fragment} in {target.relative_to(root)}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built HTML directory, e.g. docs/_build/html")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(f"check_links: {args.site} has no index.html: build the site first (make docs)", file=sys.stderr)
        return 2
    problems = check_site(args.site)
    for line in problems:
        print(line)
    n_pages = sum(1 for _ in args.site.rglob("*.html"))
    print(f"check_links: {n_pages} pages, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
