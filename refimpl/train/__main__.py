"""``python -m refimpl.train train|plot ...``: the trainer's commands without refimpl/cli.py."""
import argparse
import sys

from refimpl.train import add_plot_parser, add_train_parser


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refimpl.train")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_plot_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
