"""The repository stands alone: every "SPEC n" citation resolves to a section of docs/SPEC.md, and no
tracked file points outside the repository for the spec."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "SPEC.md"
CITING = ("refimpl", "derivations", "tests", "benchmarks", "examples", "docs", "README.md", "PORTING.md")
WORD = "SP" + "EC"          # kept apart so this file's own text is not read as a citation
CITATION = re.compile(WORD + r" (\d+)(?:-(\d+))?(?: step (\d+))?(?: \(([A-Za-z0-9, ]+)\))?")


def spec_sections() -> dict[int, str]:
    """Section number -> the section's text (its numbered heading to the next numbered heading)."""
    text = SPEC.read_text()
    heads = list(re.finditer(r"^## (\d+)\. ", text, flags=re.M))
    return {int(m.group(1)): text[m.start():(heads[i + 1].start() if i + 1 < len(heads) else len(text))]
            for i, m in enumerate(heads)}


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines()]


def citations():
    for path in tracked_files():
        rel = path.relative_to(ROOT)
        if not str(rel).startswith(CITING) or path.suffix not in (".py", ".md") or path == SPEC:
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for m in CITATION.finditer(line):
                yield f"{rel}:{lineno}", m


def unresolved(where, m, sections) -> str | None:
    first, last, step, sub = m.group(1), m.group(2), m.group(3), m.group(4)
    for n in {int(first), int(last or first)}:
        if n not in sections:
            return f"{where}: '{m.group(0)}' names section {n}, which docs/SPEC.md does not have"
    body = sections[int(first)]
    if step is not None and not re.search(rf"^{step}\. ", body, flags=re.M):
        return f"{where}: '{m.group(0)}': section {first} has no step {step}"
    for symbol in (sub or "").split(","):
        symbol = symbol.strip()
        # a sub-reference is a symbol the section defines (P4, Q, Mf); prose in parentheses is not one
        if re.fullmatch(r"[A-Z][A-Za-z]?\d*", symbol) and not re.search(rf"\b{symbol}\b", body):
            return f"{where}: '{m.group(0)}': section {first} does not define {symbol}"
    return None


def test_spec_has_its_sections_and_the_paper_citation():
    sections = spec_sections()
    assert sorted(sections) == list(range(1, 11))
    assert "1804.00222" in SPEC.read_text()


def test_every_spec_citation_resolves():
    sections = spec_sections()
    found = list(citations())
    assert len(found) > 300        # the citations are really being read
    problems = [p for where, m in found if (p := unresolved(where, m, sections))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("text, ok", [(WORD + " 4 step 3", True), (WORD + " 4 step 9", False),
                                      (WORD + " 11", False), (WORD + " 3-4", True), (WORD + " 9-12", False),
                                      (WORD + " 5 (P4, P5)", True), (WORD + " 5 (P99)", False),
                                      (WORD + " 2 (the z <= 0 branch)", True)])
def test_the_citation_check_can_fail(text, ok):
    m = CITATION.search(text)
    assert (unresolved("here", m, spec_sections()) is None) == ok


def test_no_tracked_file_points_outside_the_repository():
    outside = ".." + "/shared"
    hits = [str(p.relative_to(ROOT)) for p in tracked_files()
            if p.is_file() and p.suffix in (".py", ".md", ".toml", ".txt", ".cfg", "")
            and outside in p.read_text(errors="replace")]
    assert not hits


def test_readme_and_derivations_link_the_spec():
    assert "(docs/SPEC.md)" in (ROOT / "README.md").read_text()
    assert "(../docs/SPEC.md)" in (ROOT / "derivations" / "README.md").read_text()


def primitive_table() -> dict[str, tuple[set, set]]:
    """docs/golden.md section 5: kind -> (input names, attr names), from the table's backticked names."""
    text = (ROOT / "docs" / "golden.md").read_text()
    section = text[text.index("## 5. Primitive kinds"):text.index("## 6. Composed kinds")]
    table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("`"):
            continue
        names = lambda cell: set(re.findall(r"`([A-Za-z_]\w*)`", cell))     # noqa: E731
        for kind in names(cells[0]):
            table[kind] = (names(cells[1]), names(cells[2]))
    return table


def test_golden_primitive_table_names_every_input_and_attr():
    """The contract's table of primitive kinds matches the cases refimpl writes (names by kind)."""
    import json
    manifest = json.loads((ROOT / "tests" / "golden" / "manifest.json").read_text())
    table = primitive_table()
    seen: dict[str, tuple[set, set]] = {}
    for case in manifest["cases"]:
        if case["config"] is not None:
            continue
        inputs = {k for k, v in case["arrays"].items() if v["role"] == "input"}
        have_inputs, have_attrs = seen.setdefault(case["kind"], (set(), set()))
        have_inputs |= inputs
        have_attrs |= set(case["attrs"])
    assert set(seen) == set(table)
    for kind, (inputs, attrs) in seen.items():
        assert (inputs, attrs) == table[kind], kind


def test_the_porting_guide_and_contract_are_final():
    for name in ("PORTING.md", "docs/golden.md", "docs/SPEC.md", "README.md"):
        text = (ROOT / name).read_text()
        assert "TO" + "DO" not in text and "(draft)" not in text, name


PATH_MENTION = re.compile(r"(?:refimpl|tests|examples|benchmarks|derivations|docs)/[A-Za-z0-9_./-]+\.(?:py|md|json|png)")


def test_every_file_the_docs_name_exists():
    docs = [ROOT / "README.md", ROOT / "PORTING.md", *sorted((ROOT / "docs").glob("*.md")),
            *sorted((ROOT / "derivations").glob("*.md"))]
    missing = [f"{doc.relative_to(ROOT)}: {path}" for doc in docs for path in PATH_MENTION.findall(doc.read_text())
               if not (ROOT / path).exists() and not (doc.parent / path).exists()]
    assert not missing, missing
