"""``refimpl golden export|check|verify``: golden values (SPEC 10, docs/golden.md).

``verify`` needs NumPy alone: its parser and command import only refimpl.golden.verifier.
"""
from __future__ import annotations

import argparse
import sys

from refimpl.runtime import directory_arg


def _kind_list(text: str) -> list[str]:
    """An argparse ``type``: one or more comma-separated golden case kinds."""
    from refimpl import golden

    selected = [k for k in text.split(",") if k]
    unknown = [k for k in selected if k not in golden.kinds()]
    if not selected or unknown:
        raise argparse.ArgumentTypeError(f"unknown kind {','.join(unknown) or repr(text)} "
                                         f"(valid: {', '.join(golden.kinds())})")
    return selected


def _golden_export(args) -> int:
    from refimpl import golden

    manifest = golden.export(args.directory, kinds=args.kinds, missing_only=args.missing, progress=True)
    if args.missing:
        print(f"the golden set in {args.directory} now holds {len(manifest['cases'])} cases")
    else:
        print(f"wrote {len(manifest['cases'])} golden cases to {args.directory}")
    return 0


def _golden_check(args) -> int:
    from refimpl import golden

    report = golden.check(args.directory, float32=args.float32, only=args.only, progress=True)
    if report.ok:
        return 0
    print(f"{args.parser.prog}: {args.directory} does not pass: {report.summary()}", file=sys.stderr)
    return 1


def _golden_verify(args) -> int:
    from refimpl.golden import verifier

    backend = verifier.load_backend(args.backend)
    try:
        report = verifier.verify(args.directory, backend, include=args.include, exclude=args.exclude,
                                 float32=args.float32, log=print, strict=args.strict, progress=True)
    except SystemExit as exc:     # an exit the verifier did not contain must not pass for a verdict
        print(f"verdict: FAIL (the run ended early: sys.exit({exc.code!r}))", flush=True)
        print(f"{args.parser.prog}: {args.directory} does not pass: the run ended early "
              f"(sys.exit({exc.code!r}))", file=sys.stderr)
        return 1
    if args.json is not None:
        report.write_json(args.json)
    if report.ok:
        return 0
    print(f"{args.parser.prog}: {args.directory} does not pass: {report.summary()}", file=sys.stderr)
    return 1


def _names(text: str) -> list[str]:
    """An argparse ``type``: comma-separated names (kinds a port chooses; not checked against refimpl's)."""
    names = [k for k in text.split(",") if k]
    if not names:
        raise argparse.ArgumentTypeError(f"no kind in {text!r}")
    return names


def add_verify_parser(gsub) -> None:
    """``refimpl golden verify``: needs NumPy alone (no refimpl compute, no autograd)."""
    ver = gsub.add_parser("verify", help="verify a port's backend against a golden set (NumPy only)",
                          description="Run BACKEND (module:object or file.py:object: an object with one "
                                      "callable per kind, <kind>(inputs, attrs, config) and <kind>_vjp(inputs, "
                                      "attrs, config, cotangents); docs/golden.md section 9) on every selected "
                                      "case of the golden set in DIRECTORY and compare. Kinds the backend does "
                                      "not implement are listed as not implemented, with a coverage line. Exit "
                                      "status 0 when every implemented selected case passes (and at least one "
                                      "is implemented), 1 when one does not, 2 when the set or the backend "
                                      "cannot be read.")
    ver.add_argument("directory", help="a directory holding manifest.json")
    ver.add_argument("--backend", required=True, metavar="MODULE:OBJECT", help="the backend to verify")
    ver.add_argument("--float32", action="store_true",
                     help="give the backend float32 inputs and apply the float32 rule")
    ver.add_argument("--include", type=_names, action="extend", metavar="KIND[,KIND...]",
                     help="verify only these kinds (default: every kind of the set)")
    ver.add_argument("--exclude", type=_names, action="extend", metavar="KIND[,KIND...]",
                     help="leave these kinds out")
    ver.add_argument("--strict", action="store_true",
                     help="fail when the backend does not implement a selected kind")
    ver.add_argument("--json", metavar="REPORT.json", help="also write the report as JSON")
    ver.set_defaults(func=_golden_verify, parser=ver)


def add_golden_parsers(sub) -> None:
    """Register ``golden`` and its sub-commands export, check and verify on an argparse subparsers object."""
    from refimpl import golden

    kinds = ", ".join(golden.kinds())
    parser = sub.add_parser("golden", help="golden values (SPEC 10): export a set, or check refimpl against one",
                            description="Golden values (SPEC 10): a directory with manifest.json and one .npz "
                                        "per case, for checking a port against refimpl.")
    gsub = parser.add_subparsers(dest="golden_command", required=True, metavar="{export,check,verify}")
    exp = gsub.add_parser("export", help="write a golden set to DIRECTORY",
                          description="Write a golden set to DIRECTORY: a new or empty directory, or one "
                                      "holding a set refimpl exported before (that set is replaced; nothing "
                                      "else in the directory is touched).")
    exp.add_argument("directory", type=directory_arg, help="where to write the set")
    exp.add_argument("--kinds", type=_kind_list, action="extend", metavar="KIND[,KIND...]",
                     help=f"export only these kinds (comma-separated, or the option repeated; default: all). "
                          f"Kinds: {kinds}")
    exp.add_argument("--missing", action="store_true",
                     help="add only the cases the set in DIRECTORY lacks, leaving every other file byte for byte")
    exp.set_defaults(func=_golden_export, parser=exp)
    chk = gsub.add_parser("check", help="recompute a golden set with refimpl and compare",
                          description="Recompute every case of the golden set in DIRECTORY with refimpl and "
                                      "compare, per case and array; count the cases of each kind against "
                                      "the ones this version exports. Exit status 0 when the set passes, "
                                      "1 when it does not, 2 when it cannot be read.")
    chk.add_argument("directory", type=directory_arg, help="a directory holding manifest.json")
    chk.add_argument("--float32", action="store_true",
                     help="run refimpl in float32 and apply SPEC 10's float32 rule "
                          "(error <= max(1e-4, 3 x the recorded float32 error))")
    chk.add_argument("--only", type=_kind_list, action="extend", metavar="KIND[,KIND...]",
                     help=f"check only these kinds (comma-separated, or the option repeated); the others may "
                          f"be missing. Kinds: {kinds}")
    chk.set_defaults(func=_golden_check, parser=chk)
    add_verify_parser(gsub)
