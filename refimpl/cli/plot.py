"""``refimpl plot RUN_DIR``: a run's meta-training curves to RUN_DIR/curves.png (refimpl.train.plot)."""
from __future__ import annotations

from refimpl.runtime import directory_arg, positive_int


def plot_command(args) -> int:
    from refimpl.runtime import check_run_dir
    from refimpl.train.plot import plot_run

    check_run_dir(args.run_dir, create=False)       # a directory the PNG can be written to
    print(f"wrote {plot_run(args.run_dir, window=args.window)}")
    return 0


def add_plot_parser(subparsers):
    """Register ``plot`` on an argparse subparsers object (``set_defaults(func=..., parser=...)``)."""
    p = subparsers.add_parser("plot", help="draw a run's meta-training curves to RUN_DIR/curves.png",
                              description="Draw J, the few-shot accuracy and the gradient norm of the run "
                                          "in RUN_DIR against the meta-step, to RUN_DIR/curves.png.")
    p.add_argument("run_dir", type=directory_arg, help="a directory written by 'refimpl train'")
    p.add_argument("--window", type=positive_int, default=None,
                   help="smoothing window in meta-steps (default: about 1/20 of the run)")
    p.set_defaults(func=plot_command, parser=p)
    return p
