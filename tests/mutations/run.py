"""The mutation check: apply each listed mistake to a scratch copy of the tree, run its tests, say killed or not.

    .venv/bin/python tests/mutations/run.py                 # every mutation; writes tests/mutations/RESULT.txt
    .venv/bin/python tests/mutations/run.py --only ddof     # those whose name contains "ddof" (no RESULT.txt)
    .venv/bin/python tests/mutations/run.py --list          # names only

``mutations.toml`` lists each mutation: ``name``, ``file``, the exact ``old``
text (it must occur exactly once in the file), the ``new`` text (or lists of
alternatives, ``old[i]`` -> ``new[i]``, the first found is applied: the same
mistake in the code before and after a branch changes it), the ``tests``
to run (pytest paths or node ids), optionally ``k`` (a pytest ``-k``
expression narrowing them), and ``killers``: substrings of the test ids
written to catch it. The working tree is copied once (its tracked and
untracked-but-not-ignored files, as they are now) to a temporary directory;
each mutation is applied there, its tests run with that copy first on the
import path, and the file is restored before the next. The working tree is
never written, except for RESULT.txt after a full run.

A mutation is KILLED when one of its killers fails, KILLED-ELSEWHERE when
only other tests fail (a kill by accident: write the assertion that guards
it), SURVIVED when every test passes, and ERROR when pytest could not run the
tests (a collection or usage error) or the old text is not in the file
(SKIPPED instead for a mutation marked ``optional``: code that only some
branches have). Run
by hand, not by ``make test`` (pytest does not collect this directory: no file
here is named test_*.py). The tests of the unmutated copy must pass first.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TIMEOUT = 900          # seconds per mutation; a hang counts as killed (by the timeout, not an assertion)


def load(path=HERE / "mutations.toml") -> list[dict]:
    try:
        import tomllib
    except ModuleNotFoundError:
        sys.exit("mutations: needs Python >= 3.11 (tomllib reads mutations.toml)")
    with open(path, "rb") as f:
        mutations = tomllib.load(f)["mutation"]
    names = [m["name"] for m in mutations]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        sys.exit(f"mutations.toml: repeated names {sorted(dup)}")
    for m in mutations:
        missing = {"name", "file", "old", "new", "tests", "killers"} - set(m)
        if missing:
            sys.exit(f"mutations.toml: {m.get('name', '?')}: missing {sorted(missing)}")
    return mutations


def scratch_copy() -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    dest = Path(tempfile.mkdtemp(prefix="refimpl-mutations-"))
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def pytest_args(m: dict) -> list[str]:
    return [*m["tests"], *(["-k", m["k"]] if m.get("k") else [])]


def run_tests(copy: Path, tests: list[str]) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "--no-header", *tests]
    try:
        p = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    return p.returncode, p.stdout + p.stderr


def failed_tests(output: str) -> list[str]:
    return re.findall(r"^FAILED (\S+)", output, flags=re.M)


def check_imports_from(copy: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    where = subprocess.run([sys.executable, "-c", "import refimpl; print(refimpl.__file__)"], cwd=copy, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not Path(where).resolve().is_relative_to(copy.resolve()):
        sys.exit(f"mutations: refimpl imports from {where}, not from the scratch copy {copy}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="run only the mutations whose name contains this text")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--keep", action="store_true", help="keep the scratch copy")
    ap.add_argument("--skip-baseline", action="store_true",
                    help="do not run the unmutated tests first (only right after they passed on this tree)")
    args = ap.parse_args(argv)
    mutations = load()
    if args.only:
        mutations = [m for m in mutations if args.only in m["name"]]
        if not mutations:
            sys.exit(f"mutations: no mutation name contains {args.only!r}")
    if args.list:
        print("\n".join(m["name"] for m in mutations))
        return 0
    copy = scratch_copy()
    lines = []

    def say(line):
        print(line, flush=True)
        lines.append(line)

    try:
        check_imports_from(copy)
        selections = list(dict.fromkeys(tuple(pytest_args(m)) for m in mutations))
        t0 = time.time()
        for args_ in ([] if args.skip_baseline else selections):
            code, out = run_tests(copy, list(args_))
            if code != 0:
                print(out[-4000:])
                sys.exit(f"mutations: the unmutated tests fail (exit {code}: {' '.join(args_)}); fix them first")
        say(f"unmutated: {len(selections)} test selections "
            + ("not run (--skip-baseline)" if args.skip_baseline else f"pass ({time.time() - t0:.0f} s)"))
        counts = {}
        for m in mutations:
            path = copy / m["file"]
            if not path.is_file():
                status, detail = "ERROR", f"no file {m['file']}"
            else:
                original = path.read_text()
                olds, news = ([m["old"]], [m["new"]]) if isinstance(m["old"], str) else (m["old"], m["new"])
                found = [(o, n) for o, n in zip(olds, news) if original.count(o) == 1]
                if not found:
                    times = "/".join(str(original.count(o)) for o in olds)
                    status = "SKIPPED" if m.get("optional") else "ERROR"
                    detail = f"old text found {times} times in {m['file']}"
                else:
                    path.write_text(original.replace(*found[0]))
                    try:
                        t0 = time.time()
                        code, out = run_tests(copy, pytest_args(m))
                    finally:
                        path.write_text(original)
                    failed = failed_tests(out)
                    by_killer = [t for t in failed if any(k in t for k in m["killers"])]
                    if code == -1:
                        status, detail = "KILLED-ELSEWHERE", "timeout"
                    elif code == 0:
                        status, detail = "SURVIVED", "every test passed"
                    elif by_killer:
                        status, detail = "KILLED", ", ".join(by_killer[:3]) + (" ..." if len(by_killer) > 3 else "")
                    elif code == 1:
                        status, detail = "KILLED-ELSEWHERE", ", ".join(failed[:3]) or "failed without a test id"
                    else:
                        status, detail = "ERROR", f"pytest exit {code}: " + " ".join(out.strip().splitlines()[-1:])
                    detail += f" [{time.time() - t0:.0f} s]"
            counts[status] = counts.get(status, 0) + 1
            say(f"{status:<16} {m['name']}: {detail}")
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        say(f"\n{len(mutations)} mutations: {summary}")
        if not args.only:
            rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                   capture_output=True, text=True).stdout.strip()
            header = (f"# tests/mutations/run.py on {rev}{' with uncommitted changes' if dirty else ''}, "
                      f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
            (HERE / "RESULT.txt").write_text(header + "\n".join(lines) + "\n")
        return 0 if counts.get("KILLED", 0) + counts.get("SKIPPED", 0) == len(mutations) else 1
    finally:
        if args.keep:
            print(f"scratch copy kept in {copy}")
        else:
            shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
