"""Shipped update rules: theta-only ``.npz`` files with their config, loadable by name.

    from refimpl.pretrained import list_rules, load_rule
    theta, config, info = load_rule("small-glyphs")     # a shipped name, or a path to a theta .npz

A shipped rule ``NAME`` is ``rules/NAME.npz`` (written by
``save_params(..., kind="theta")``, so it carries its Config) and
``rules/NAME.json``: how it was made (command, seed, commit, meta-steps) and
how to use it (``recommended_inner_steps``, chosen on glyphs in held-out
fonts). The meta-training run that makes one is :mod:`refimpl.cli.recipe`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

RULES_DIR = Path(__file__).resolve().parent / "rules"


def list_rules() -> tuple:
    """The names of the shipped rules, sorted.

    Returns
    -------
    tuple of str
        Names for :func:`refimpl.load_rule` (e.g. ``"small-glyphs-rotation"``).
    """
    if not RULES_DIR.is_dir():
        return ()
    return tuple(sorted(p.stem for p in RULES_DIR.glob("*.npz")))


def load_rule(name_or_path):
    """A shipped rule by name, or a theta ``.npz`` file by path.

    Parameters
    ----------
    name_or_path : str or path-like
        A name from :func:`refimpl.list_rules`, or the path of a file written by
        :func:`refimpl.save` with kind ``"theta"``.

    Returns
    -------
    theta : dict[str, ndarray]
        The rule's parameters.
    config : Config
        The configuration it was meta-trained with.
    info : dict
        The rule's JSON description (how it was trained, its recommended inner steps, ...) for a
        shipped rule; ``{}`` for a file without a ``.json`` beside it.

    Raises
    ------
    ValueError
        Naming the shipped rules, when ``name_or_path`` is neither a shipped rule nor a theta file.

    Examples
    --------
    >>> import refimpl
    >>> theta, config, info = refimpl.load_rule("small-glyphs-rotation")
    >>> config.layer_sizes, info["recommended_inner_steps"]
    ((196, 64, 64, 16), 100)
    """
    from refimpl.params import load_params

    text = os.fspath(name_or_path)
    path = Path(text)
    if not (text.endswith(".npz") or os.sep in text) and (RULES_DIR / f"{text}.npz").is_file():
        path = RULES_DIR / f"{text}.npz"
    if not path.is_file():
        known = ", ".join(list_rules()) or "none"
        raise ValueError(f"load_rule: {text!r} is neither a shipped rule (known: {known}) nor a theta .npz file")
    theta, config = load_params(path, kind="theta")
    meta_path = path.with_suffix(".json")
    info = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return theta, config, info
