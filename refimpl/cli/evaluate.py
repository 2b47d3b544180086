"""``refimpl eval RULE``: a rule against every baseline (:func:`refimpl.evaluation.suite.evaluate_rule`)."""
from __future__ import annotations

import argparse
import sys

from refimpl.runtime import directory_arg, nonneg_int, positive_int


def _int_list(text: str) -> list[int]:
    from refimpl.evaluation.suite import MAX_INNER_STEPS

    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        values = []
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0, got {text!r}")
    if max(values) > MAX_INNER_STEPS:
        raise argparse.ArgumentTypeError(f"expected inner steps of at most {MAX_INNER_STEPS}, got {max(values)}")
    return values


def _name_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def add_eval_parser(subparsers):
    """Register ``eval`` (:func:`~refimpl.evaluation.suite.evaluate_rule`) on an argparse subparsers object."""
    from refimpl.evaluation.benchmark import ALL_BASELINES
    from refimpl.evaluation.suite import DEFAULT_INNER_STEPS

    p = subparsers.add_parser(
        "eval", help="a rule against every baseline: paired few-shot accuracy, diagnostics, tables, plots",
        description="Apply RULE (a shipped rule name, a theta .npz file, or 'random') to fresh random base "
                    "models on each dataset's unlabeled train split and read out few-shot accuracy at each "
                    "inner-step checkpoint, paired against phi_0 and every baseline (raw, ink, PCA, VAE, "
                    "supervised) over --seeds seeds; print the Markdown table and write report.json, "
                    "report.md and plots to --out.")
    p.add_argument("rule", help="shipped rule name (see refimpl.pretrained.list_rules), theta .npz, or 'random'")
    p.add_argument("--datasets", type=_name_list, default=["digits", "moons"],
                   help="comma-separated datasets, each once: built-in names or paths of dataset .npz files "
                        "holding x_train, y_train, x_test, y_test (default digits,moons)")
    p.add_argument("--k-shot", type=positive_int, default=10, help="labeled examples per class (default 10)")
    p.add_argument("--inner-steps", type=_int_list, default=list(DEFAULT_INNER_STEPS),
                   help="comma-separated inner-step checkpoints (default 0,100,300,1000)")
    p.add_argument("--seeds", type=positive_int, default=10, help="number of seeds (tasks) 0..n-1 (default 10)")
    p.add_argument("--baselines", type=_name_list, default=list(ALL_BASELINES),
                   help=f"comma-separated baselines (default {','.join(ALL_BASELINES)}; ink is always included)")
    p.add_argument("--n-way", type=positive_int, default=10,
                   help="classes per task for datasets with more classes (glyphs; default 10); a value "
                        "larger than every dataset's class count is refused")
    p.add_argument("--trials", type=positive_int, default=10, help="labeled draws per seed (default 10)")
    p.add_argument("--vae-steps", type=nonneg_int, default=None,
                   help="the VAE's step cap (default 20000; it stops early when its validation loss stops falling)")
    p.add_argument("--supervised-steps", type=nonneg_int, default=None,
                   help="supervised baseline training steps (default: chosen on held-out glyph tasks)")
    p.add_argument("--supervised-lr", type=float, default=None,
                   help="supervised baseline learning rate (default: chosen on held-out glyph tasks)")
    p.add_argument("--arch", choices=("rule", "paper"), default="rule",
                   help="base net: the rule's widths (default) or the paper's 4 x 128 with a 32-d top")
    p.add_argument("--no-random-row", action="store_true", help="leave out the random-theta rows")
    p.add_argument("--out", type=directory_arg, default=None,
                   help="directory for report.json/.md and plots; each finished (dataset, seed) is kept there "
                        "as it is done")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the interrupted evaluation in --out (same arguments); the report is the "
                            "uninterrupted run's")
    again.add_argument("--force", action="store_true",
                       help="replace the evaluation --out holds (removes only the files an evaluation writes)")
    p.set_defaults(func=eval_command, parser=p)
    return p


def eval_command(args) -> int:
    from refimpl.evaluation.reporting import format_report
    from refimpl.evaluation.suite import evaluate_rule

    if (args.resume or args.force) and args.out is None:
        args.parser.error("--resume and --force need --out")

    report = evaluate_rule(args.rule, args.datasets, k_shot=args.k_shot, inner_steps=args.inner_steps,
                           seeds=args.seeds, baselines=args.baselines, n_way=args.n_way, n_trials=args.trials,
                           vae_steps=args.vae_steps, supervised_steps=args.supervised_steps,
                           supervised_lr=args.supervised_lr, arch=args.arch, random_row=not args.no_random_row,
                           out_dir=args.out, resume=args.resume, force=args.force)
    print(format_report(report))
    for p in report.get("paths", {}).values():
        print(f"eval: wrote {p}", file=sys.stderr)
    return 0
