"""theta/phi names, shapes, init, validation, save/load (SPEC 2, 9)."""
import os
import zipfile

import numpy as np
import pytest

from refimpl import params as params_module
from refimpl.config import PRESETS, preset
from refimpl.params import (
    init_phi,
    init_theta,
    load_params,
    phi_shapes,
    save_params,
    theta_shapes,
    validate_phi,
    validate_theta,
)

TINY = preset("tiny")
# SPEC 9 readout names, transcribed (the expected value, not the code's constant).
SPEC9_READOUTS = ["zero", "rbf", "first", "lin_lower", "sqr_lower", "lin_upper", "sqr_upper"]


def _bn(prefix):
    return [f"{prefix}/gamma", f"{prefix}/beta"]


# SPEC 9 table, transcribed in table order.
SPEC9_THETA_NAMES = (
    ["topd/conv0/w", *_bn("topd/bn0"), "topd/conv1/w", *_bn("topd/bn1"), "topd/conv2/w", *_bn("topd/bn2"),
     "topd/conv3/w", *_bn("topd/bn3"), "topd/conv4/w", *_bn("topd/bn4"), "topd/conv5/w", "topd/conv5/b",
     *_bn("computeh/bn_in"), "computeh/conv0/w", *_bn("computeh/bn0"), "computeh/conv1/w",
     *_bn("computeh/bn1"), "computeh/conv2/w", *_bn("computeh/bn2"), "computeh/conv3/w",
     *_bn("computeh/bn3"), "errprop/w", "errprop/b"]
    + [f"readout/{p}/{ab}" for p in SPEC9_READOUTS for ab in "ab"] + ["merge/w", "bias/w"])


def test_theta_names_and_shapes_tiny():
    s = theta_shapes(TINY)
    assert list(s) == SPEC9_THETA_NAMES
    B, D, Hd, Hs, T, R = 7, 6, 11, 12, 13, 2
    expected = {
        "topd/conv0/w": (5, 1, T), "topd/bn0/gamma": (T,), "topd/conv1/w": (3, T, B), "topd/bn1/beta": (B,),
        "topd/conv2/w": (3, B, B), "topd/bn2/gamma": (B,), "topd/conv3/w": (3, B, T), "topd/bn3/beta": (T,),
        "topd/conv4/w": (3, T, T), "topd/bn4/gamma": (T,), "topd/conv5/w": (3, T, D), "topd/conv5/b": (D,),
        "computeh/bn_in/gamma": (4 + D,), "computeh/bn_in/beta": (4 + D,),
        "computeh/conv0/w": (3, 13 + D, Hs), "computeh/bn0/beta": (Hs,), "computeh/conv1/w": (3, Hs, Hs),
        "computeh/bn1/gamma": (Hs,), "computeh/conv2/w": (3, Hs, Hs), "computeh/bn2/beta": (Hs,),
        "computeh/conv3/w": (3, Hs, Hd), "computeh/bn3/gamma": (Hd,), "computeh/bn3/beta": (Hd,),
        "errprop/w": (Hd, D), "errprop/b": (D,), "merge/w": (10,), "bias/w": (Hd,),
        **{f"readout/{p}/{ab}": (Hd, R) for p in SPEC9_READOUTS for ab in "ab"},
    }
    for name, shape in expected.items():
        assert s[name] == shape, name


def test_phi_names_and_shapes():
    assert phi_shapes(TINY) == {"layer1/W": (15, 9), "layer1/V": (15, 9), "layer1/b": (9,),
                                "layer2/W": (9, 14), "layer2/V": (9, 14), "layer2/b": (14,),
                                "layer3/W": (14, 8), "layer3/V": (14, 8), "layer3/b": (8,)}
    assert len(phi_shapes(preset("paper"))) == 15


@pytest.mark.parametrize("name", list(PRESETS))
def test_init_matches_shapes_and_dtype(name):
    c = preset(name)
    for dtype in (np.float32, np.float64):
        theta = init_theta(c, np.random.default_rng(0), dtype)
        phi = init_phi(c, np.random.default_rng(0), dtype)
        assert {k: v.shape for k, v in theta.items()} == theta_shapes(c)
        assert list(phi) == list(phi_shapes(c))
        assert all(v.dtype == dtype for v in [*theta.values(), *phi.values()])
        assert validate_theta(theta, c) == dtype and validate_phi(phi, c) == dtype


def test_init_is_deterministic_and_dtype_independent():
    a = init_theta(TINY, np.random.default_rng(3))
    b = init_theta(TINY, np.random.default_rng(3))
    c32 = init_theta(TINY, np.random.default_rng(3), np.float32)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a[k].astype(np.float32), c32[k])
    p1, p2 = init_phi(TINY, np.random.default_rng(4)), init_phi(TINY, np.random.default_rng(4))
    assert all(np.array_equal(p1[k], p2[k]) for k in p1)
    other = init_phi(TINY, np.random.default_rng(5))
    assert not np.array_equal(p1["layer1/W"], other["layer1/W"])


def test_init_draws_in_spec9_order():
    """The random theta arrays are consumed from the generator in SPEC 9 order, the
    constant ones draw nothing: redrawing by hand gives the same arrays."""
    rng = np.random.default_rng(11)
    theta = init_theta(TINY, np.random.default_rng(11))
    Hd = TINY.h_dims
    for name, shape in theta_shapes(TINY).items():
        if name.endswith("/w") and "/conv" in name:
            expected = rng.standard_normal(shape) * np.sqrt(1.0 / (shape[0] * shape[1]))
        elif name.startswith("readout/") or name in ("errprop/w", "bias/w"):
            expected = rng.standard_normal(shape) * np.sqrt(1.0 / Hd)
        else:
            continue
        np.testing.assert_array_equal(theta[name], expected, err_msg=name)


def test_theta_constant_inits():
    theta = init_theta(TINY, np.random.default_rng(0))
    for name, v in theta.items():
        if name.endswith("/gamma"):
            assert np.all(v == 1), name
        elif name.endswith("/beta") or name in ("errprop/b", "topd/conv5/b"):
            assert np.all(v == 0), name
    np.testing.assert_array_equal(theta["merge/w"], np.full(10, 0.1))


def test_theta_init_statistics():
    """Conv weights have std sqrt(1/(K*Cin)); readouts, errprop/w, bias/w sqrt(1/Hd)."""
    c = preset("paper")
    theta = init_theta(c, np.random.default_rng(0))
    w = theta["computeh/conv1/w"]   # [3, 64, 64]: 12288 draws
    assert abs(w.std() / np.sqrt(1 / (3 * 64)) - 1) < 0.03
    w0 = theta["topd/conv2/w"]      # [3, 128, 128]
    assert abs(w0.std() / np.sqrt(1 / (3 * 128)) - 1) < 0.03
    ro = np.concatenate([theta[f"readout/{p}/{ab}"].ravel() for p in SPEC9_READOUTS for ab in "ab"]
                        + [theta["errprop/w"].ravel(), theta["bias/w"].ravel()])
    assert abs(ro.std() / np.sqrt(1 / 64) - 1) < 0.06
    assert abs(ro.mean()) < 0.02


def test_phi_init_truncated_normal():
    c = preset("paper").replace(layer_sizes=(400, 300, 200))
    phi = init_phi(c, np.random.default_rng(0))
    w = np.concatenate([phi["layer1/W"].ravel(), phi["layer1/V"].ravel(), phi["layer2/W"].ravel()])
    b = np.concatenate([phi["layer1/b"], phi["layer2/b"]])
    assert np.abs(w).max() <= 0.02 and np.abs(b).max() <= 0.2
    # truncated at 2 sd: the std is 0.01 * 0.8796 (the std of N(0,1) restricted to [-2, 2])
    assert abs(w.std() / (0.01 * 0.8796) - 1) < 0.01
    assert np.abs(w).max() > 0.0199           # the tails are reached (redrawn, not clipped)
    assert np.mean(np.abs(w) > 0.0199) < 0.005  # ~0.0011 expected; clipping would pile up 4.6%
    assert abs(b.std() / (0.1 * 0.8796) - 1) < 0.1


def test_truncated_normal_redraws_until_in_range():
    z = params_module.truncated_normal(np.random.default_rng(0), (100000,), 1.0, at=0.5)
    assert np.abs(z).max() <= 0.5 and np.abs(z).min() < 1e-3
    # roughly uniform-ish on [-0.5, 0.5]: a normal restricted there
    assert abs(z.std() - 0.2816) < 0.005


def test_init_argument_errors():
    with pytest.raises(ValueError, match="init_theta: .*'dtype'"):
        init_theta(TINY, np.random.default_rng(0), np.float16)
    with pytest.raises(ValueError, match="init_phi: .*'rng'"):
        init_phi(TINY, np.random.RandomState(0))
    with pytest.raises(ValueError, match="init_phi: .*'config'"):
        init_phi({"batch_size": 7}, np.random.default_rng(0))


# ---------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------
def _theta():
    return init_theta(TINY, np.random.default_rng(0))


def _phi():
    return init_phi(TINY, np.random.default_rng(0))


def test_validate_theta_refuses_other_batch_size():
    theta8 = init_theta(TINY.replace(batch_size=8), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"built for batch size 8 .*topd/conv1/w.*batch_size is 7"):
        validate_theta(theta8, TINY)


def test_validate_names_shapes_dtypes():
    theta = _theta()
    del theta["merge/w"]
    theta["merge/weights"] = np.zeros(10)
    with pytest.raises(ValueError, match=r"missing name\(s\) \['merge/w'\].*unexpected name\(s\) \['merge/weights'\]"):
        validate_theta(theta, TINY)
    theta = _theta()
    theta["errprop/w"] = theta["errprop/w"].T.copy()
    theta["bias/w"] = np.zeros(12)
    with pytest.raises(ValueError, match=r"'errprop/w' \(6, 11\) \(expected \(11, 6\)\).*'bias/w' \(12,\)"):
        validate_theta(theta, TINY)
    phi = _phi()
    phi["layer2/b"] = phi["layer2/b"].astype(np.float32)
    with pytest.raises(ValueError, match=r"share one dtype.*'layer2/b' float32"):
        validate_phi(phi, TINY)
    phi = _phi()
    phi["layer1/W"] = phi["layer1/W"].astype(np.int64)
    with pytest.raises(ValueError, match=r"float32 or float64.*'layer1/W' int64"):
        validate_phi(phi, TINY)
    phi = _phi()
    phi["layer3/V"] = phi["layer3/V"].copy()
    phi["layer3/V"][1, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf in \['layer3/V'\]"):
        validate_phi(phi, TINY)
    phi = _phi()
    phi["layer1/b"] = list(phi["layer1/b"])
    with pytest.raises(ValueError, match=r"not numpy arrays: \['layer1/b'\]"):
        validate_phi(phi, TINY)
    with pytest.raises(ValueError, match="float64"):
        validate_phi(_phi(), TINY, dtype=np.float32)
    with pytest.raises(ValueError, match="mapping"):
        validate_phi([1, 2], TINY)
    with pytest.raises(ValueError, match="missing"):      # phi of another depth
        validate_phi(init_phi(TINY.replace(layer_sizes=(15, 9)), np.random.default_rng(0)), TINY)


# ---------------------------------------------------------------------------------
# save / load
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_round_trip(tmp_path, dtype):
    theta = init_theta(TINY, np.random.default_rng(1), dtype)
    phi = init_phi(TINY, np.random.default_rng(2), dtype)
    save_params(tmp_path / "theta.npz", theta, TINY, "theta")
    save_params(str(tmp_path / "phi.npz"), phi, TINY, "phi")
    t2, c2 = load_params(tmp_path / "theta.npz", kind="theta", config=TINY)
    p2, c3 = load_params(tmp_path / "phi.npz")
    assert c2 == TINY and c3 == TINY
    assert list(t2) == list(theta) and list(p2) == list(phi)
    for a, b in [(theta, t2), (phi, p2)]:
        for k in a:
            assert b[k].dtype == dtype
            np.testing.assert_array_equal(a[k], b[k])
    assert sorted(os.listdir(tmp_path)) == ["phi.npz", "theta.npz"]   # no temp files left
    with np.load(tmp_path / "theta.npz", allow_pickle=False) as f:   # a plain npz
        assert str(f["__kind__"]) == "theta"
        assert "topd/conv0/w" in f.files


def test_save_refuses_invalid_params(tmp_path):
    theta = _theta()
    del theta["bias/w"]
    with pytest.raises(ValueError, match="save_params: .*missing.*bias/w"):
        save_params(tmp_path / "t.npz", theta, TINY, "theta")
    with pytest.raises(ValueError, match="kind"):
        save_params(tmp_path / "t.npz", _theta(), TINY, "weights")
    assert os.listdir(tmp_path) == []


def test_failed_save_leaves_existing_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "phi.npz"
    old = _phi()
    save_params(path, old, TINY, "phi")
    before = path.read_bytes()
    real_write_array = np.lib.format.write_array
    written = []

    def exploding_write_array(fp, array, **kwargs):
        if len(written) == 2:                       # half an archive is on disk, then the disk fills
            raise OSError("disk full")
        written.append(array)
        real_write_array(fp, array, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", exploding_write_array)
    new = init_phi(TINY, np.random.default_rng(99))
    with pytest.raises(OSError, match="disk full"):
        save_params(path, new, TINY, "phi")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["phi.npz"]          # the temporary file was removed
    loaded, _ = load_params(path, "phi", TINY)
    np.testing.assert_array_equal(loaded["layer1/W"], old["layer1/W"])


def _saved_contents(tmp_path, kind="theta"):
    path = tmp_path / "p.npz"
    save_params(path, _theta() if kind == "theta" else _phi(), TINY, kind)
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_load_wrong_kind_and_config(tmp_path):
    path = tmp_path / "theta.npz"
    save_params(path, _theta(), TINY, "theta")
    with pytest.raises(ValueError, match=r"holds theta, expected phi"):
        load_params(path, kind="phi")
    other = TINY.replace(h_dims=10, activation="tanh")
    with pytest.raises(ValueError, match=r"another config \(h_dims: file 11 vs given 10, activation"):
        load_params(path, config=other)
    with pytest.raises(ValueError, match="kind"):
        load_params(path, kind="both")


def test_interrupt_while_a_member_closes_reaches_the_caller(tmp_path, monkeypatch):
    """Ctrl-C while a member is being finished: the caller sees KeyboardInterrupt (which the
    trainer handles), not the zip module's follow-on error, and the old file stays."""
    path = tmp_path / "phi.npz"
    save_params(path, _phi(), TINY, "phi")
    before = path.read_bytes()

    def interrupted_close(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile._ZipWriteFile, "close", interrupted_close)
    with pytest.raises(KeyboardInterrupt):
        save_params(path, init_phi(TINY, np.random.default_rng(98)), TINY, "phi")
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["phi.npz"]


def test_load_not_an_npz(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello, not an archive\n")
    with pytest.raises(ValueError, match="load_params: .*notes.npz.*not a valid .npz"):
        load_params(text)
    npy = tmp_path / "single.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        load_params(npy)
    with pytest.raises(ValueError, match="absent.npz: no such file"):
        load_params(tmp_path / "absent.npz")


def test_load_truncated_and_corrupt(tmp_path):
    path = tmp_path / "t.npz"
    save_params(path, _theta(), TINY, "theta")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.npz"):
        load_params(truncated)
    # flip bytes inside a member's data: the zip CRC check (or the npy header) catches it
    corrupt = tmp_path / "corrupt.npz"
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("topd/conv2/w.npy")
    raw = bytearray(data)
    start = info.header_offset + 30 + len(info.filename) + 200
    raw[start:start + 16] = b"\xff" * 16
    corrupt.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"corrupt.npz.* entry 'topd/conv2/w' is corrupt"):
        load_params(corrupt)


def test_load_refuses_pickled_object_array(tmp_path):
    contents = _saved_contents(tmp_path)
    contents["bias/w"] = np.array([{"evil": 1}, None], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **contents)      # savez pickles object arrays
    with pytest.raises(ValueError, match=r"'bias/w' holds a pickled \(object\) array"):
        load_params(path)


def test_load_missing_config_or_kind(tmp_path):
    contents = _saved_contents(tmp_path)
    no_config = {k: v for k, v in contents.items() if k != "__config__"}
    np.savez(tmp_path / "a.npz", **no_config)
    with pytest.raises(ValueError, match="no embedded config"):
        load_params(tmp_path / "a.npz")
    no_kind = {k: v for k, v in contents.items() if k != "__kind__"}
    np.savez(tmp_path / "b.npz", **no_kind)
    with pytest.raises(ValueError, match="no embedded kind"):
        load_params(tmp_path / "b.npz")
    bad_config = {**contents, "__config__": np.array('{"batch_size": 7}')}
    np.savez(tmp_path / "c.npz", **bad_config)
    with pytest.raises(ValueError, match="invalid embedded config.*missing field"):
        load_params(tmp_path / "c.npz")
    numeric_config = {**contents, "__config__": np.zeros(3)}
    np.savez(tmp_path / "d.npz", **numeric_config)
    with pytest.raises(ValueError, match="'__config__' must be a 0-d string"):
        load_params(tmp_path / "d.npz")


def test_load_names_shapes_dtypes_against_config(tmp_path):
    contents = _saved_contents(tmp_path)
    cases = {
        "missing": ({k: v for k, v in contents.items() if k != "readout/rbf/a"},
                    r"missing name\(s\) \['readout/rbf/a'\]"),
        "unexpected": ({**contents, "readout/extra/a": np.zeros((11, 2))},
                       r"unexpected name\(s\) \['readout/extra/a'\]"),
        "shape": ({**contents, "computeh/conv0/w": np.zeros((3, 18, 12))},
                  r"'computeh/conv0/w' \(3, 18, 12\) \(expected \(3, 19, 12\)\)"),
        "dtype": ({**contents, "merge/w": contents["merge/w"].astype(np.float32)},
                  r"share one dtype.*'merge/w' float32"),
        "batch": ({**contents, "topd/conv1/w": np.zeros((3, 13, 9))}, "built for batch size 9"),
    }
    for label, (arrays, message) in cases.items():
        path = tmp_path / f"{label}.npz"
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match=f"load_params: .*{label}.npz.*" + message):
            load_params(path)
