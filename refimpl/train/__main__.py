"""``python -m refimpl.train train|plot ...``: the trainer's commands without the other refimpl commands."""
import sys

from refimpl.cli import OneLineParser, run_command
from refimpl.train import add_plot_parser, add_train_parser


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m refimpl.train")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_plot_parser(sub)
    return run_command(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
