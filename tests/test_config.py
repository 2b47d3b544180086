"""Config (SPEC 1): fields, presets, validation, JSON round trip."""
import dataclasses
import json

import numpy as np
import pytest

from refimpl import config as config_module
from refimpl.config import (
    ACTIVATIONS,
    KERNEL,
    N_STATS,
    PRESET_EXTRAS,
    PRESETS,
    TOPD_KERNEL0,
    Config,
    check_kernel_size,
    preset,
)

SPEC1_FIELDS = ["batch_size", "layer_sizes", "delta_dims", "h_dims", "computeh_size", "topd_size",
                "readout_rank", "lr_phi", "ridge", "n_eval", "activation", "eps_phi", "eps_theta",
                "eps_d", "eps_s", "eps_w", "eps_p"]


def test_fields_are_exactly_spec1():
    assert [f.name for f in dataclasses.fields(Config)] == SPEC1_FIELDS


def test_paper_defaults():
    c = Config()
    assert c == preset("paper")
    assert (c.batch_size, c.layer_sizes, c.delta_dims, c.h_dims, c.computeh_size, c.topd_size,
            c.readout_rank, c.n_eval, c.activation) == (128, (196, 128, 128, 128, 128, 32), 32, 64,
                                                        64, 64, 4, 5, "relu")
    assert (c.lr_phi, c.ridge) == (3e-4, 0.1)
    assert (c.eps_phi, c.eps_theta, c.eps_d, c.eps_s, c.eps_w, c.eps_p) == (1e-6, 1e-3, 1e-6, 1e-8,
                                                                            1e-8, 1e-12)
    assert c.L == 5


def test_presets_exact_values():
    tiny, mid = preset("tiny"), preset("mid")
    assert tiny == Config(batch_size=7, layer_sizes=(15, 9, 14, 8), delta_dims=6, h_dims=11,
                          computeh_size=12, topd_size=13, readout_rank=2, n_eval=4)
    assert mid == Config(batch_size=32, layer_sizes=(64, 48, 40, 16), delta_dims=8, h_dims=16,
                         computeh_size=24, topd_size=20, readout_rank=3)
    assert PRESET_EXTRAS == {"tiny": {"n_label": 16, "n_cls": 5, "U": 3},
                             "mid": {"n_label": 50, "n_cls": 10, "U": 2}}
    assert set(PRESETS) == {"paper", "tiny", "mid", "small", "mixture"}
    # the mixture preset's rule is the small one with a 32-wide top layer (the paper's evaluation top)
    assert preset("mixture") == preset("small").replace(layer_sizes=(196, 64, 64, 32))
    # a preset differs from paper only in the fields it lists
    assert Config().diff(tiny) == ["batch_size", "layer_sizes", "delta_dims", "h_dims",
                                   "computeh_size", "topd_size", "readout_rank", "n_eval"]
    assert Config().diff(mid) == ["batch_size", "layer_sizes", "delta_dims", "h_dims",
                                  "computeh_size", "topd_size", "readout_rank"]


def test_tiny_sizes_pairwise_different():
    """SPEC 1: every tiny size differs from every other, from the derived channel
    counts 4 + D and 13 + D, the 4 statistics and the kernel sizes 3 and 5, so a
    transposed or mixed-up axis cannot pass a shape check by coincidence."""
    c = preset("tiny")
    sizes = {"B": c.batch_size, **{f"N^{i}": n for i, n in enumerate(c.layer_sizes)},
             "D": c.delta_dims, "Hd": c.h_dims, "Hs": c.computeh_size, "T": c.topd_size,
             "R": c.readout_rank, "4+D": N_STATS + c.delta_dims, "13+D": 3 * N_STATS + 1 + c.delta_dims,
             "stats": N_STATS, "K": KERNEL, "K0": TOPD_KERNEL0}
    values = list(sizes.values())
    clashes = [(a, b) for a in sizes for b in sizes if a < b and sizes[a] == sizes[b]]
    assert len(set(values)) == len(values), f"equal sizes: {clashes}"


def test_kernel_constants_are_odd():
    assert (TOPD_KERNEL0, KERNEL) == (5, 3)
    for bad in (4, 0, -3, 2.0, True):
        with pytest.raises(ValueError, match="odd"):
            check_kernel_size("K", bad)
    assert check_kernel_size("K", 7) == 7


def test_json_round_trip_every_preset():
    for name, c in PRESETS.items():
        text = c.to_json()
        assert json.loads(text)["layer_sizes"] == list(c.layer_sizes)
        back = Config.from_json(text)
        assert back == c and hash(back) == hash(c), name
        assert back.lr_phi == c.lr_phi and back.eps_p == c.eps_p  # exact floats
    odd = Config(activation="swish", lr_phi=0.1234567890123, eps_p=3.3e-13)
    assert Config.from_json(odd.to_json()) == odd


def test_from_json_rejects_bad_text():
    good = json.loads(preset("tiny").to_json())
    with pytest.raises(ValueError, match="unknown field.*'n_cls'"):
        Config.from_dict({**good, "n_cls": 5})
    del good["ridge"]
    with pytest.raises(ValueError, match="missing field.*'ridge'"):
        Config.from_dict(good)
    with pytest.raises(ValueError, match="config: not valid JSON"):
        Config.from_json("{not json")
    with pytest.raises(ValueError, match="mapping"):
        Config.from_json("[1, 2]")


def test_replace():
    c = preset("tiny").replace(activation="tanh", layer_sizes=[15, 9])
    assert c.activation == "tanh" and c.layer_sizes == (15, 9) and c.L == 1
    assert c.batch_size == 7
    with pytest.raises(ValueError, match="unknown field"):
        c.replace(n_label=3)
    with pytest.raises(ValueError, match="activation"):
        c.replace(activation="gelu")


def test_frozen_and_normalised():
    c = Config(layer_sizes=[4, np.int64(3)], batch_size=np.int32(5), ridge=np.float32(0.5))
    assert c.layer_sizes == (4, 3) and type(c.layer_sizes[1]) is int and type(c.batch_size) is int
    assert type(c.ridge) is float
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.batch_size = 3


@pytest.mark.parametrize("changes, message", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -3}, "batch_size"),
    ({"batch_size": 2.0}, "batch_size.*integer"),
    ({"batch_size": True}, "batch_size.*integer"),
    ({"delta_dims": 0}, "delta_dims"),
    ({"h_dims": -1}, "h_dims"),
    ({"computeh_size": 0}, "computeh_size"),
    ({"topd_size": 0}, "topd_size"),
    ({"readout_rank": 0}, "readout_rank"),
    ({"n_eval": 0}, "n_eval"),
    ({"layer_sizes": (5,)}, "layer_sizes.*at least two"),
    ({"layer_sizes": ()}, "layer_sizes.*at least two"),
    ({"layer_sizes": (5, 0, 3)}, r"layer_sizes\[1\]"),
    ({"layer_sizes": (5, 2.5)}, r"layer_sizes\[1\].*integer"),
    ({"layer_sizes": 5}, "layer_sizes"),
    ({"layer_sizes": "15,9"}, "layer_sizes"),
    ({"activation": "gelu"}, "activation.*relu.*step"),
    ({"activation": None}, "activation"),
    ({"lr_phi": 0.0}, "lr_phi"),
    ({"lr_phi": 1.5}, "lr_phi"),
    ({"lr_phi": float("nan")}, "lr_phi"),
    ({"ridge": -0.1}, "ridge"),
    ({"ridge": "0.1"}, "ridge.*number"),
    ({"eps_phi": 0.0}, "eps_phi"),
    ({"eps_theta": -1e-3}, "eps_theta"),
    ({"eps_d": float("inf")}, "eps_d"),
    ({"eps_s": 0}, "eps_s"),
    ({"eps_w": 0.0}, "eps_w"),
    ({"eps_p": -1e-12}, "eps_p"),
])
def test_validation(changes, message):
    with pytest.raises(ValueError, match="config: .*" + message):
        Config(**changes)


def test_every_activation_accepted():
    assert ACTIVATIONS == ("relu", "leaky_relu", "elu", "tanh", "swish", "sigmoid", "softplus", "step")
    for a in ACTIVATIONS:
        assert Config(activation=a).activation == a


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset .huge.; known: tiny, mid, small, mixture, paper"):
        preset("huge")
    assert config_module.preset("tiny") is PRESETS["tiny"]
