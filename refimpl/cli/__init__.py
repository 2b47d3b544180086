"""Command line: refimpl train, refimpl plot, refimpl eval, refimpl demo, refimpl paper, refimpl ops-report and
refimpl golden export|check|verify.

Every error is one line on stderr, "refimpl COMMAND: what is wrong", and a
non-zero exit: 2 for bad input (arguments, files, directories), 1 for a
golden set that does not match.
"""
from __future__ import annotations

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr, ``PROG: message`` (exit status 2).

    Sub-command parsers made with ``add_subparsers`` are of the same class, so
    their ``prog`` ("refimpl golden export") is the one prefix of a message.
    """

    def error(self, message):
        self.exit(2, f"{self.prog}: {' '.join(str(message).split())}\n")


def build_parser() -> argparse.ArgumentParser:
    from refimpl.cli.demo import add_demo_parser
    from refimpl.cli.evaluate import add_eval_parser
    from refimpl.cli.golden import add_golden_parsers
    from refimpl.cli.ops_report import add_ops_report_parser
    from refimpl.cli.paper import add_paper_parser
    from refimpl.cli.plot import add_plot_parser
    from refimpl.cli.train import add_train_parser

    parser = OneLineParser(prog="refimpl", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add_golden_parsers(sub)
    add_eval_parser(sub)
    add_demo_parser(sub)
    add_paper_parser(sub)
    add_ops_report_parser(sub)
    add_train_parser(sub)
    add_plot_parser(sub)
    return parser


def run_command(parser: argparse.ArgumentParser, argv=None) -> int:
    """Parse ``argv`` and run its command; bad input (a ValueError or an OSError) is one line on stderr."""
    from refimpl.cli.signals import interrupted

    args, unknown = parser.parse_known_args(argv)
    command_parser = getattr(args, "parser", parser)
    if unknown:   # reported by the command's own parser, so the message names the command
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except KeyboardInterrupt as e:   # commands that must save state on Ctrl-C (train, demo) handle it themselves
        return interrupted(f"{command_parser.prog}: interrupted" + (f" {e}" if str(e) else ""))
    except (ValueError, OSError) as e:
        message = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        if isinstance(e, OSError) and e.filename:
            message = f"{e.filename}: {message}"
        print(f"{command_parser.prog}: {' '.join(message.split())}", file=sys.stderr)
        return 2


def build_verify_parser() -> argparse.ArgumentParser:
    """The parser of ``refimpl golden verify`` alone: building it imports no compute."""
    from refimpl.cli.golden import add_verify_parser

    parser = OneLineParser(prog="refimpl")
    sub = parser.add_subparsers(dest="command", required=True)
    golden = sub.add_parser("golden")
    add_verify_parser(golden.add_subparsers(dest="golden_command", required=True))
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["golden", "verify"] and not {"-h", "--help"} & set(argv):
        return run_command(build_verify_parser(), argv)   # a port's check must not need refimpl's compute
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
