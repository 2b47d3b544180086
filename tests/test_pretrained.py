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
