"""Command line: ``refimpl train``, ``refimpl plot``, ``refimpl demo``,
``refimpl ops-report`` and ``refimpl golden export|check``."""
from __future__ import annotations

import argparse
import sys


def _golden_export(args) -> int:
    from refimpl import golden

    manifest = golden.export(args.directory, kinds=args.kinds)
    print(f"wrote {len(manifest['cases'])} golden cases to {args.directory}")
    return 0


def _golden_check(args) -> int:
    from refimpl import golden

    report = golden.check(args.directory, float32=args.float32)
    return 0 if report.ok else 1


def _ops_report(args) -> int:
    from refimpl.reference.ops_report import operator_report

    return operator_report(size_name=args.size)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refimpl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    golden = sub.add_parser("golden", help="golden values (SPEC 10)")
    gsub = golden.add_subparsers(dest="golden_command", required=True)
    exp = gsub.add_parser("export", help="write a golden set to DIR")
    exp.add_argument("directory")
    exp.add_argument("--kinds", nargs="*", default=None, help="only these kinds")
    exp.set_defaults(func=_golden_export)
    chk = gsub.add_parser("check", help="recompute a golden set with refimpl and compare")
    chk.add_argument("directory")
    chk.add_argument("--float32", action="store_true",
                     help="run refimpl in float32 and apply SPEC 10's float32 pass rule")
    chk.set_defaults(func=_golden_check)

    from refimpl.evaluate import add_demo_parser
    from refimpl.train import add_plot_parser, add_train_parser

    add_demo_parser(sub)

    report = sub.add_parser("ops-report", help="every operator checked against autograd, and timed")
    report.add_argument("--size", choices=["golden", "paper"], default="golden")
    report.set_defaults(func=_ops_report)
    add_train_parser(sub)
    add_plot_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
