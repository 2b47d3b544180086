"""``refimpl demo`` (``make demo``): the shipped rule against every baseline, a glyph control, and a short
meta-training (:func:`refimpl.evaluation.demo.run_demo`)."""
from __future__ import annotations

from refimpl.runtime import directory_arg, nonneg_float, positive_int


def add_demo_parser(subparsers):
    """Register ``demo`` (:func:`~refimpl.evaluation.demo.run_demo`) on an argparse subparsers object."""
    from refimpl.evaluation.demo import DEMO_MINUTES, DEMO_RULE, DEMO_SEEDS

    p = subparsers.add_parser(
        "demo", help="the shipped rule against every baseline, a glyph control, and a short meta-training",
        description="Evaluate the shipped rule on held-out digits, moons (and Fashion-MNIST when installed) "
                    "against every baseline; the glyph control at 10-way 10-shot; then meta-train for about "
                    "--minutes minutes and plot J. Tables and plots go to --run-dir, replacing the previous "
                    "demo's.")
    p.add_argument("--run-dir", type=directory_arg, default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--minutes", type=nonneg_float, default=DEMO_MINUTES,
                   help=f"meta-training time (default {DEMO_MINUTES:g})")
    p.add_argument("--seeds", type=positive_int, default=DEMO_SEEDS,
                   help=f"number of seeds (tasks) 0..n-1 (default {DEMO_SEEDS})")
    p.add_argument("--rule", default=DEMO_RULE, help=f"rule to evaluate (default {DEMO_RULE})")
    p.add_argument("--continue", dest="continue_run", action="store_true",
                   help="continue the previous demo's meta-training in --run-dir (default: start it from scratch, "
                        "removing only the previous demo's files)")
    p.set_defaults(func=demo_command, parser=p)
    return p


def demo_command(args) -> int:
    from refimpl.cli.signals import interrupted
    from refimpl.evaluation.demo import run_demo

    try:
        run_demo(args.run_dir, rule=args.rule, minutes=args.minutes, seeds=args.seeds,
                 continue_run=args.continue_run)
    except KeyboardInterrupt as e:
        return interrupted(f"\ndemo: interrupted {e}" if str(e) else "\ndemo: interrupted")
    return 0
