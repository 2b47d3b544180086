"""Evaluate an update rule against every baseline: a thin wrapper over ``refimpl eval``.

    .venv/bin/python examples/evaluate_rule.py small-glyphs-rotation --datasets digits,moons \\
        --inner-steps 0,100,300 --seeds 10 --out runs/eval
    .venv/bin/python examples/evaluate_rule.py runs/demo/meta_training/theta.npz --datasets glyphs_rotation
    .venv/bin/python examples/evaluate_rule.py random --datasets moons --seeds 3

The same as ``refimpl eval ARGS`` (see ``refimpl eval --help``); from Python,
:func:`refimpl.evaluate_rule` returns the report as a dict.
"""
import sys

from refimpl.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
