"""refimpl.data: the IDX parser, the Fashion-MNIST loader (on files the tests write),
the glyph renderer and its augmentation targets, and the common Dataset interface."""
from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

from refimpl.data import (
    Dataset,
    DatasetNotFoundError,
    FashionMNISTNotFoundError,
    IDXFormatError,
    fashion_mnist as fm,
    get_dataset,
    list_datasets,
    read_idx,
    write_idx,
)
from refimpl.data.glyphs import GlyphSource
from refimpl.data.idx import encode_idx

# ---------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_roundtrip(tmp_path, dtype, name):
    rng = np.random.default_rng(0)
    for shape in [(5,), (3, 4), (2, 3, 4)]:
        a = (rng.normal(size=shape) * 50).astype(dtype)
        p = write_idx(tmp_path / name, a)
        b = read_idx(p)
        assert b.dtype == np.dtype(dtype) and b.dtype.isnative and b.shape == shape
        np.testing.assert_array_equal(a, b)


def test_idx_bytes_are_the_format(tmp_path):
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16)
    raw = encode_idx(a)
    assert raw[:4] == b"\x00\x00\x0b\x02"
    assert raw[4:12] == b"\x00\x00\x00\x02\x00\x00\x00\x03"
    assert raw[12:] == a.astype(">i2").tobytes()
    # gzip detected from the content, not the name
    p = tmp_path / "plain-name"
    p.write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(p), a)


def _bad(tmp_path, raw, name="bad-idx"):
    p = tmp_path / name
    p.write_bytes(raw)
    return p


GOOD = encode_idx(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize("raw,problem", [
    (b"\x01\x00\x08\x01" + GOOD[4:], "bad magic number"),
    (b"\x00\x07\x08\x03" + GOOD[4:], "bad magic number"),
    (b"\x00\x00\x0a\x03" + GOOD[4:], "unknown data type code 0x0a"),
    (b"\x00\x00\x08\x00", "number of dimensions is 0"),
    (b"\x00\x00", "truncated header"),
    (GOOD[:10], "truncated header"),
    (GOOD[:-1], "truncated data"),
    (GOOD[:16], "truncated data"),
    (GOOD + b"\x00\x00", "2 trailing bytes"),
])
def test_idx_malformed(tmp_path, raw, problem):
    for name, data in (("bad-idx", raw), ("bad-idx.gz", gzip.compress(raw))):
        p = _bad(tmp_path, data, name)
        with pytest.raises(ValueError) as e:
            read_idx(p)
        assert isinstance(e.value, IDXFormatError)
        assert str(p) in str(e.value) and problem in str(e.value), str(e.value)


def test_idx_wrong_dims_and_bad_gzip(tmp_path):
    p = _bad(tmp_path, GOOD)
    with pytest.raises(ValueError, match="wrong number of dimensions: expected 1, found 3"):
        read_idx(p, expect_ndim=1)
    q = _bad(tmp_path, gzip.compress(GOOD)[:-12], "cut.gz")
    with pytest.raises(ValueError, match="gzip") as e:
        read_idx(q)
    assert str(q) in str(e.value)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")


# ---------------------------------------------------------------------------------------
# Fashion-MNIST loader on small files written here
# ---------------------------------------------------------------------------------------

def _write_fashion(d, n_train=30, n_test=20, gz=True, seed=0, override=None):
    rng = np.random.default_rng(seed)
    arrays = {
        ("train", "images"): rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        ("train", "labels"): (np.arange(n_train) % 10).astype(np.uint8),
        ("test", "images"): rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        ("test", "labels"): (np.arange(n_test) % 10).astype(np.uint8),
    }
    arrays.update(override or {})
    for key, base in fm.FILES.items():
        write_idx(d / (base + (".gz" if gz else "")), arrays[key])
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_loader_on_written_files(tmp_path, gz):
    arrays = _write_fashion(tmp_path, gz=gz)
    d28 = get_dataset("fashion_mnist28", path=tmp_path)
    d14 = get_dataset("fashion_mnist14", path=str(tmp_path))
    assert (d28.n_features, d28.image_shape, d28.n_classes, d28.n_reg) == (784, (28, 28), 10, 0)
    assert (d14.n_features, d14.image_shape) == (196, (14, 14))
    assert d28.class_names[9] == "Ankle boot"
    for split, n in (("train", 30), ("test", 20)):
        x28, lab = d28.arrays(split)
        x14, lab14 = d14.arrays(split)
        img = arrays[(split, "images")]
        # arrays() keeps file order
        np.testing.assert_array_equal(lab, arrays[(split, "labels")])
        np.testing.assert_array_equal(lab14, lab)
        np.testing.assert_allclose(x28, img.reshape(n, 784) / 255.0, rtol=1e-6)
        area = img.astype(np.float64).reshape(n, 14, 2, 14, 2).mean(axis=(2, 4)) / 255.0
        np.testing.assert_allclose(x14, area.reshape(n, 196), rtol=1e-6)
        assert x28.dtype == np.float32


def test_fashion_env_var_and_precedence(tmp_path, monkeypatch):
    _write_fashion(tmp_path)
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path))
    assert get_dataset("fashion_mnist14").n_examples("test") == 20
    with pytest.raises(FashionMNISTNotFoundError):
        get_dataset("fashion_mnist14", path=tmp_path / "elsewhere")


def test_fashion_missing_files_message(tmp_path, monkeypatch):
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    _write_fashion(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError) as e:
        get_dataset("fashion_mnist28", path=tmp_path)
    assert isinstance(e.value, DatasetNotFoundError) and isinstance(e.value, FashionMNISTNotFoundError)
    msg = str(e.value)
    for part in (str(tmp_path), "t10k-labels-idx1-ubyte", "apt-get install dataset-fashion-mnist",
                 "REFIMPL_FASHION_MNIST", "path="):
        assert part in msg, msg
    assert "train-images" not in msg.split("missing")[1].split(".")[0]


@pytest.mark.parametrize("override,problem", [
    ({("train", "images"): np.zeros((4, 27, 28), np.uint8)}, "expected 28x28 images"),
    ({("train", "images"): np.zeros((4, 784), np.uint8)}, "wrong number of dimensions: expected 3"),
    ({("test", "labels"): np.zeros((20, 1), np.uint8)}, "wrong number of dimensions: expected 1"),
    ({("test", "labels"): np.full(20, 10, np.uint8)}, "label 10 out of range"),
    ({("test", "labels"): np.zeros(19, np.uint8)}, "19 labels but"),
    ({("train", "images"): np.zeros((30, 28, 28), np.float32)}, "expected unsigned byte pixels"),
])
def test_fashion_malformed(tmp_path, override, problem):
    _write_fashion(tmp_path, override=override)
    with pytest.raises(ValueError, match=problem) as e:
        get_dataset("fashion_mnist28", path=tmp_path)
    assert str(tmp_path) in str(e.value)


def _real_fashion_dir():
    try:
        return fm.find_files()
    except FileNotFoundError:
        return None


@pytest.mark.skipif(_real_fashion_dir() is None, reason="Debian's dataset-fashion-mnist files not installed")
def test_real_fashion_mnist():
    d = get_dataset("fashion_mnist14")
    assert d.n_examples("train") == 60000 and d.n_examples("test") == 10000
    np.testing.assert_array_equal(d.class_counts("test"), np.full(10, 1000))
    x, y = d.labeled_batch(np.random.default_rng(0), 5, split="test")
    assert x.shape == (50, 196) and y.shape == (50, 10) and 0 <= x.min() and x.max() <= 1


# ---------------------------------------------------------------------------------------
# Glyphs
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def glyphs():
    return get_dataset("glyphs")


def test_glyph_classes_and_splits(glyphs):
    src = glyphs.source
    assert glyphs.n_features == 196 and glyphs.image_shape == (14, 14) and glyphs.n_reg == 4
    names = glyphs.class_names
    for required in ("A", "z", "7", "+", "\u221e", "$", "\u20ac"):
        assert required in names
    assert glyphs.n_classes >= 90 and len(set(names)) == len(names)
    assert not set(src.fonts["train"]) & set(src.fonts["test"])
    assert len(set(src.fonts["train"])) >= 8 and len(set(src.fonts["test"])) >= 3
    assert glyphs.class_counts("train").min() >= 1 and glyphs.class_counts("test").min() >= 1
    for split in ("train", "test"):
        base = src.base[split]
        assert base.min() >= 0 and base.max() <= 1
        assert (base.max(axis=1) > 0.3).all()                    # every glyph has ink


@pytest.mark.parametrize("ss", [2, 4])
def test_glyph_identity_transform_is_the_clean_image(ss):
    src = GlyphSource(supersample=ss)
    idx = np.arange(0, len(src.labels["test"]), 7)
    z = np.zeros(len(idx))
    out = src.render(idx, "test", z, z, z, dtype=np.float64)
    np.testing.assert_allclose(out, src.base["test"][idx], atol=1e-6)


def test_glyph_transform_conventions(glyphs):
    src = glyphs.source
    idx = np.arange(0, len(src.labels["train"]), 5)
    n = len(idx)
    z = np.zeros(n)
    base = src.base["train"][idx].reshape(n, 14, 14)
    # +90 degrees is a counter-clockwise quarter turn as displayed (np.rot90 k=1)
    rot = src.render(idx, "train", np.full(n, 90.0), z, z).reshape(n, 14, 14)
    np.testing.assert_allclose(rot, np.rot90(base, 1, axes=(1, 2)), atol=1e-5)
    rot = src.render(idx, "train", np.full(n, -90.0), z, z).reshape(n, 14, 14)
    np.testing.assert_allclose(rot, np.rot90(base, -1, axes=(1, 2)), atol=1e-5)
    # dx > 0 moves right, dy > 0 moves down (whole pixels: exact, when nothing leaves the frame)
    keep = (base[:, :, -1].max(axis=1) == 0) & (base[:, -1, :].max(axis=1) == 0)
    assert keep.sum() > 10
    right = src.render(idx, "train", z, np.ones(n), z).reshape(n, 14, 14)
    down = src.render(idx, "train", z, z, np.ones(n)).reshape(n, 14, 14)
    np.testing.assert_allclose(right[keep], np.roll(base, 1, axis=2)[keep], atol=1e-6)
    np.testing.assert_allclose(down[keep], np.roll(base, 1, axis=1)[keep], atol=1e-6)


def test_glyph_targets_describe_the_transform(glyphs):
    src = glyphs.source
    rng = np.random.default_rng(3)
    idx = rng.integers(len(src.labels["train"]), size=64)
    x, reg = src.draw(rng, idx, "train", np.dtype(np.float64))
    assert reg.shape == (64, 4) and np.abs(reg).max() <= 1
    np.testing.assert_allclose(reg[:, 0] ** 2 + reg[:, 1] ** 2, 1, atol=1e-12)
    angle = np.rad2deg(np.arctan2(reg[:, 0], reg[:, 1]))
    assert np.abs(angle).max() <= 30 and np.abs(angle).max() > 20
    dx, dy = reg[:, 2] * src.max_shift, reg[:, 3] * src.max_shift
    np.testing.assert_allclose(src.render(idx, "train", angle, dx, dy, np.float64), x, atol=1e-9)
    # undoing the shift and then the rotation at high resolution approximately recovers the glyph
    from scipy.ndimage import rotate, shift
    err_raw, err_undone = [], []
    for i in range(16):
        img = x[i].reshape(14, 14)
        back = shift(img, (-dy[i], -dx[i]), order=1)
        back = rotate(back, -angle[i], reshape=False, order=1)
        clean = src.base["train"][idx[i]].reshape(14, 14)
        err_undone.append(np.abs(back - clean).mean())
        err_raw.append(np.abs(img - clean).mean())
    assert np.mean(err_undone) < 0.6 * np.mean(err_raw)


def test_glyph_no_augmentation():
    d = get_dataset("glyphs", augment=False)
    assert d.n_reg == 0
    x, y = d.labeled_batch(np.random.default_rng(0), 1, split="test")
    assert y.shape == (d.n_classes, d.n_classes)
    clean, lab = d.arrays("test")
    rows = {r.tobytes() for r in clean}
    assert all(r.tobytes() in rows for r in x)


# ---------------------------------------------------------------------------------------
# The common interface, on every offline dataset
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_fashion(tmp_path_factory):
    d = tmp_path_factory.mktemp("fashion")
    _write_fashion(d, n_train=60, n_test=40)
    return d


@pytest.fixture(params=["glyphs", "digits", "moons", "fashion_mnist14"])
def ds(request, fake_fashion):
    kw = {"path": fake_fashion} if request.param.startswith("fashion") else {}
    return get_dataset(request.param, **kw)


def test_registry():
    glyph_variants = {"glyphs_rotation", "glyphs_classes", "glyphs_plain", "glyphs_paper_aug", "glyphs10",
                      "glyphs20", "glyphs_letters", "glyphs_math", "glyphs_currency", "glyphs_rotation_final",
                      "glyphs10_rotation", "glyphs20_rotation", "glyphs_letters_rotation", "glyphs_math_rotation",
                      "glyphs_currency_rotation"}
    assert set(list_datasets()) == {"glyphs", "digits", "moons", "fashion_mnist14", "fashion_mnist28"} | glyph_variants
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        get_dataset("mnist")
    with pytest.raises(ValueError, match="bad keyword"):
        get_dataset("moons", colour="red")


def test_batches_shapes_ranges_dtypes(ds):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        x = ds.unlabeled_batch(rng, 33, split=split)
        assert x.shape == (33, ds.n_features) and x.dtype == np.float32
        assert x.min() >= 0 and x.max() <= 1
        k = 3
        x, y = ds.labeled_batch(rng, k, split=split, dtype=np.float64)
        n = ds.n_classes * k
        assert x.shape == (n, ds.n_features) and y.shape == (n, ds.n_classes + ds.n_reg)
        assert x.dtype == y.dtype == np.float64 and x.min() >= 0 and x.max() <= 1
        onehot = y[:, :ds.n_classes]
        assert set(np.unique(onehot)) <= {0.0, 1.0}
        np.testing.assert_array_equal(onehot.sum(axis=1), 1)
        np.testing.assert_array_equal(onehot.argmax(axis=1), np.repeat(np.arange(ds.n_classes), k))
        assert np.abs(y[:, ds.n_classes:]).max(initial=0) <= 1


def test_determinism(ds):
    a = ds.labeled_batch(np.random.default_rng(7), 2)
    b = ds.labeled_batch(np.random.default_rng(7), 2)
    c = ds.labeled_batch(np.random.default_rng(8), 2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(ds.unlabeled_batch(5, 16), ds.unlabeled_batch(5, 16))
    # building the dataset again gives the same data
    again = Dataset(ds.source)
    np.testing.assert_array_equal(again.arrays("test")[0], ds.arrays("test")[0])


def test_k_distinct_per_class(ds):
    x, y = ds.labeled_batch(np.random.default_rng(1), 2, split="test")
    if not ds.augmented:
        assert len({r.tobytes() for r in x}) == len(x)


def test_subset_remaps_labels():
    d = get_dataset("digits")
    sub = d.subset([7, 3])
    assert sub.n_classes == 2 and sub.class_names == ("7", "3")
    assert sub.subset(["3"]).class_names == ("3",)
    x_all, lab_all = d.arrays("test")
    x, lab = sub.arrays("test")
    np.testing.assert_array_equal(np.sort(lab_all[np.isin(lab_all, [3, 7])] == 3), np.sort(lab == 1))
    xb, yb = sub.labeled_batch(np.random.default_rng(0), 5)
    train_rows = {r.tobytes(): int(l) for r, l in zip(*d.arrays("train"))}
    got = [train_rows[r.tobytes()] for r in xb]
    np.testing.assert_array_equal(got, [7] * 5 + [3] * 5)
    np.testing.assert_array_equal(yb.argmax(axis=1), [0] * 5 + [1] * 5)
    np.testing.assert_array_equal(sub.class_counts("train"), d.class_counts("train")[[7, 3]])
    for bad, msg in (([], "at least one"), ([1, 1], "repeated"), ([10], "out of range"),
                     (["x"], "no class named"), ([1.5], "ints or class names")):
        with pytest.raises(ValueError, match=msg):
            d.subset(bad)


def test_sample_classes(glyphs):
    rng = np.random.default_rng(0)
    t = glyphs.sample_classes(rng, 5)
    assert t.n_classes == 5 and set(t.class_names) <= set(glyphs.class_names)
    x, y = t.labeled_batch(rng, 20)                   # more than a class's fonts: augmented repeats
    assert x.shape == (100, 196) and y.shape == (100, 9)
    with pytest.raises(ValueError, match="larger than the"):
        glyphs.sample_classes(rng, glyphs.n_classes + 1)
    with pytest.raises(ValueError, match="n_way"):
        glyphs.sample_classes(rng, 0)


def test_permutation_applied_consistently(ds):
    perm = ds.random_permutation(np.random.default_rng(2))
    p = ds.permuted(perm)
    assert p.n_features == ds.n_features and np.array_equal(p.perm, perm)
    u, up = ds.unlabeled_batch(np.random.default_rng(4), 9), p.unlabeled_batch(np.random.default_rng(4), 9)
    np.testing.assert_array_equal(up, u[:, perm])
    (x, y), (xp, yp) = ds.labeled_batch(np.random.default_rng(4), 2), p.labeled_batch(np.random.default_rng(4), 2)
    np.testing.assert_array_equal(xp, x[:, perm])
    np.testing.assert_array_equal(yp, y)
    np.testing.assert_array_equal(p.arrays("test")[0], ds.arrays("test")[0][:, perm])
    # permutations compose; subsets keep the permutation
    q = ds.random_permutation(np.random.default_rng(3))
    np.testing.assert_array_equal(p.permuted(q).unlabeled_batch(1, 4),
                                  ds.unlabeled_batch(1, 4)[:, perm][:, q])
    assert np.array_equal(p.subset([1, 0]).perm, perm)
    for bad in (perm[:-1], np.zeros_like(perm), perm.astype(float)):
        with pytest.raises(ValueError, match="permutation"):
            ds.permuted(bad)


def test_bad_arguments():
    d = get_dataset("moons")
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="k_per_class=600 is larger than"):
        d.labeled_batch(rng, 600)
    with pytest.raises(ValueError, match="split"):
        d.unlabeled_batch(rng, 4, split="validation")
    with pytest.raises(ValueError, match="floating"):
        d.unlabeled_batch(rng, 4, dtype=np.int32)
    with pytest.raises(ValueError, match="batch_size"):
        d.unlabeled_batch(rng, 0)
    with pytest.raises(ValueError, match="k_per_class"):
        d.labeled_batch(rng, 0)
    with pytest.raises(ValueError, match="rng"):
        d.unlabeled_batch("seed", 4)
    with pytest.raises(ValueError, match="side"):
        fm.fashion_mnist_source(side=20)


def test_digits_and_moons_specifics():
    d = get_dataset("digits")
    x, lab = d.arrays("train")
    xt, labt = d.arrays("test")
    assert x.shape[0] + xt.shape[0] == 1797 and d.image_shape == (8, 8)
    np.testing.assert_array_equal(x * 16, np.round(x * 16))        # values k/16
    assert x.max() == 1.0
    np.testing.assert_allclose(d.class_counts("test") / (d.class_counts("test") + d.class_counts("train")),
                               0.25, atol=0.01)
    m = get_dataset("moons", noise=0.1, seed=1)
    xm = np.concatenate([m.arrays("train")[0], m.arrays("test")[0]])
    np.testing.assert_allclose([xm.min(), xm.max()], [0, 1], atol=1e-6)
    assert m.n_classes == 2 and m.image_shape is None and m.n_features == 2
    assert not np.array_equal(xm, np.concatenate([get_dataset("moons", seed=2).arrays(s)[0]
                                                  for s in ("train", "test")]))
