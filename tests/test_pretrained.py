"""Loading rules by name or path (refimpl/pretrained)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import refimpl.pretrained as pre
from refimpl.config import preset
from refimpl.params import init_theta, save_params


def test_load_rule_by_name_and_by_path(tmp_path, monkeypatch):
    config = preset("tiny")
    theta = init_theta(config, np.random.default_rng(0), np.float32)
    monkeypatch.setattr(pre, "RULES_DIR", tmp_path)
    save_params(tmp_path / "toy.npz", theta, config, kind="theta")
    (tmp_path / "toy.json").write_text(json.dumps({"recommended_inner_steps": 50}))
    assert pre.list_rules() == ("toy",)
    t, c, info = pre.load_rule("toy")
    assert c == config and info["recommended_inner_steps"] == 50
    assert all(np.array_equal(t[k], theta[k]) for k in theta)
    other = tmp_path / "sub"
    other.mkdir()
    save_params(other / "x.npz", theta, config, kind="theta")
    assert pre.load_rule(other / "x.npz")[2] == {}
    with pytest.raises(ValueError, match="known: toy"):
        pre.load_rule("nope")


def test_the_shipped_rule_loads_by_name_with_its_card_and_is_package_data():
    from pathlib import Path

    from refimpl.config import Config
    from refimpl.evaluation.demo import DEMO_RULE
    from refimpl.npzio import read_npz

    assert DEMO_RULE in pre.list_rules()
    theta, config, info = pre.load_rule(DEMO_RULE)
    assert isinstance(config, Config) and theta and all(np.isfinite(v).all() for v in theta.values())
    assert not any(k.startswith("layer") for k in theta)           # theta only, no phi
    assert isinstance(info["recommended_inner_steps"], int) and info["recommended_inner_steps"] > 0
    root = Path(pre.__file__).resolve().parents[2]
    pyproject = (root / "pyproject.toml").read_text()
    assert '"refimpl.pretrained" = ["rules/*.npz", "rules/*.json", "rules/*.md"]' in pyproject
    assert read_npz(pre.RULES_DIR / f"{DEMO_RULE}.npz") is not None
