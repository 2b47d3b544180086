"""``refimpl ops-report``: every operator checked against autograd, and timed (refimpl.reference.ops_report)."""
from __future__ import annotations


def ops_report_command(args) -> int:
    from refimpl.reference.ops_report import operator_report

    return operator_report(size_name=args.size)


def add_ops_report_parser(subparsers):
    """Register ``ops-report`` on an argparse subparsers object."""
    report = subparsers.add_parser("ops-report", help="every operator checked against autograd, and timed")
    report.add_argument("--size", choices=["golden", "paper"], default="golden",
                        help="the sizes to time the operators at (default golden)")
    report.set_defaults(func=ops_report_command, parser=report)
    return report
