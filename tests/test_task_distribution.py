"""The paper's task variety (opt-in TrainConfig fields, refimpl/train/tasks.py; glyph variants)."""
from __future__ import annotations

import numpy as np
import pytest

from refimpl.data import get_dataset
from refimpl.train import CHECKPOINT_FILE, load_checkpoint, run, train_preset
from refimpl.train.presets import TrainConfig
from refimpl.train.tasks import augment_inputs, draw_unroll, sample_task, shift_columns, task_augmentation

TINY = train_preset("tiny")


def test_defaults_are_off_and_old_configs_still_load():
    tc = train_preset("small")
    assert not tc.input_augmentation and tc.n_way_choices == () and tc.p_permute == 1.0
    d = tc.to_dict()
    for name in ("n_way_choices", "p_permute", "p_task_dropout", "p_example_dropout", "p_x_shift",
                 "dropout_rate", "max_x_shift"):
        del d[name]
    assert TrainConfig.from_dict(d) == tc
    on = tc.replace(n_way_choices=[10, 13], p_task_dropout=0.5, max_x_shift=3)
    assert TrainConfig.from_json(on.to_json()) == on and on.n_way_choices == (10, 13)
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({**tc.to_dict(), "p_bogus": 1})


@pytest.mark.parametrize("field, value", [("p_task_dropout", 1.5), ("p_x_shift", -0.1),
                                          ("dropout_rate", 1.0), ("max_x_shift", -1),
                                          ("n_way_choices", (1, 5)), ("n_way_choices", "10")])
def test_bad_distribution_fields_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        TINY.replace(**{field: value})


def test_n_way_choices_and_p_permute():
    tc = TINY.replace(n_way_choices=(2, 5), p_permute=0.0)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(30):
        task, _ = sample_task(tc, 0, rng)
        seen.add(task.n_way)
        np.testing.assert_array_equal(task.perm, np.arange(len(task.perm)))
    assert seen == {2, 5}
    # capped at the class count of a small dataset
    tc = TINY.replace(datasets=("glyphs_currency",), n_way_choices=(30,))
    task, _ = sample_task(tc, 0, np.random.default_rng(1))
    assert task.n_way == get_dataset("glyphs_currency").n_classes


def _image_task(n_features=12, image_shape=(3, 4)):
    x = np.arange(1, 2 * n_features + 1, dtype=np.float64).reshape(2, n_features) / 100
    return x, image_shape


def test_shift_columns_moves_each_image_right_with_zero_fill():
    x, shape = _image_task()
    out = shift_columns(x, np.array([1, -2]), shape)
    img0, img1 = x[0].reshape(shape), x[1].reshape(shape)
    exp0 = np.concatenate([np.zeros((3, 1)), img0[:, :-1]], axis=1)
    exp1 = np.concatenate([img1[:, 2:], np.zeros((3, 2))], axis=1)
    np.testing.assert_array_equal(out, np.stack([exp0.ravel(), exp1.ravel()]))
    np.testing.assert_array_equal(shift_columns(x, np.zeros(2, int), shape), x)
    # without an image shape: along the feature axis
    np.testing.assert_array_equal(shift_columns(x, np.array([1, 0]), None)[0], np.r_[0, x[0, :-1]])


def _task(tc, seed=0):
    return sample_task(tc, 0, np.random.default_rng(seed))[0]


def test_task_mask_is_fixed_for_the_task_and_differs_between_tasks():
    tc = TINY.replace(p_task_dropout=1.0, dropout_rate=0.3, n_way=(2, 2))
    t1, t2 = _task(tc, 0), _task(tc, 1)
    a1, a1_again, a2 = task_augmentation(tc, t1), task_augmentation(tc, t1), task_augmentation(tc, t2)
    np.testing.assert_array_equal(a1.task_mask, a1_again.task_mask)
    assert not np.array_equal(a1.task_mask, a2.task_mask)
    assert 0.15 < 1 - a1.task_mask.mean() < 0.45 and not a1.x_shift and not a1.example_dropout
    x, x_a, x_b, _, _ = draw_unroll(tc, t1, 2, np.random.default_rng(5))
    dropped_permuted = np.flatnonzero(a1.task_mask[t1.perm] == 0)       # mask is in unpermuted order
    for batch in (x.reshape(-1, x.shape[-1]), x_a.reshape(-1, x.shape[-1]), x_b.reshape(-1, x.shape[-1])):
        assert (batch[:, dropped_permuted] == 0).all()
    # every other pixel keeps the glyph's ink somewhere in the batch
    kept = np.setdiff1d(np.arange(x.shape[-1]), dropped_permuted)
    assert (x.reshape(-1, x.shape[-1])[:, kept] > 0).any(axis=0).mean() > 0.5


def test_example_dropout_is_fresh_per_example_at_the_rate():
    tc = TINY.replace(p_example_dropout=1.0, dropout_rate=0.25)
    aug = task_augmentation(tc, _task(tc))
    assert aug.example_dropout and aug.task_mask is None
    x = np.ones((400, 20), np.float32)
    out = augment_inputs(tc, aug, x, np.random.default_rng(0), None)
    assert abs((out == 0).mean() - 0.25) < 0.02
    assert not all(np.array_equal(out[0] == 0, out[i] == 0) for i in range(1, 10))


def test_x_shift_per_example_within_range():
    tc = TINY.replace(p_x_shift=1.0, max_x_shift=2)
    aug = task_augmentation(tc, _task(tc))
    x = np.zeros((300, 25), np.float32)
    x[:, 12] = 1.0                                   # one lit pixel at row 2, column 2 of 5x5
    out = augment_inputs(tc, aug, x, np.random.default_rng(1), (5, 5))
    cols = np.argmax(out.reshape(300, 5, 5)[:, 2, :], axis=1)
    assert set(cols.tolist()) == {0, 1, 2, 3, 4} and (out.sum(axis=1) == 1).all()


def test_probabilities_choose_per_task():
    tc = TINY.replace(p_task_dropout=0.5, p_x_shift=0.5)
    augs = [task_augmentation(tc, _task(tc, s)) for s in range(60)]
    frac_mask = np.mean([a.task_mask is not None for a in augs])
    frac_shift = np.mean([a.x_shift for a in augs])
    assert 0.3 < frac_mask < 0.7 and 0.3 < frac_shift < 0.7


def test_augmented_run_resumes_bit_for_bit(tmp_path):
    tc = TINY.replace(p_task_dropout=0.5, p_example_dropout=0.5, p_x_shift=0.5, n_way_choices=(2, 3),
                      p_permute=0.5)
    ref, part = tmp_path / "ref", tmp_path / "part"
    assert run(ref, tc, n_steps=8, checkpoint_every=4) == 0
    assert run(part, tc, n_steps=4, checkpoint_every=4) == 0
    assert run(part, resume=True, n_steps=8) == 0
    a, _ = load_checkpoint(ref / CHECKPOINT_FILE)
    b, _ = load_checkpoint(part / CHECKPOINT_FILE)
    assert all(a.theta[k].tobytes() == b.theta[k].tobytes() for k in a.theta)


@pytest.mark.parametrize("name, side, n_classes", [("glyphs10", 10, 95), ("glyphs20", 20, 95),
                                                    ("glyphs_letters", 14, 52), ("glyphs_plain", 14, 95)])
def test_glyph_variants(name, side, n_classes):
    ds = get_dataset(name)
    assert ds.n_features == side * side and ds.image_shape == (side, side) and ds.n_classes == n_classes
    x, y = ds.labeled_batch(np.random.default_rng(0), 2, dtype=np.float64)
    assert x.shape == (2 * n_classes, side * side) and 0 <= x.min() and x.max() <= 1
    assert y.shape[1] == n_classes + (0 if name == "glyphs_plain" else 4)


def test_specialised_subsets_hold_only_their_characters():
    from refimpl.data import glyphs
    assert set(get_dataset("glyphs_math").class_names) <= set(glyphs.MATH)
    assert set(get_dataset("glyphs_currency").class_names) <= set(glyphs.CURRENCY)
    src = get_dataset("glyphs_paper_aug").source
    assert src.max_angle == 180.0 and src.max_shift == 5.0


def test_glyph_augmentation_without_targets_and_rotation_only():
    rng = np.random.default_rng(0)
    cls = get_dataset("glyphs_classes")
    assert cls.augmented and cls.n_reg == 0
    x1, y1 = cls.labeled_batch(np.random.default_rng(1), 1)
    assert y1.shape[1] == cls.n_classes
    x2, _ = cls.labeled_batch(np.random.default_rng(2), 1)
    assert not np.array_equal(x1, x2)                    # fresh augmentation per draw
    rot = get_dataset("glyphs_rotation")
    x, y = rot.labeled_batch(rng, 2)
    reg = y[:, rot.n_classes:]
    assert rot.source.max_shift == 0 and (reg[:, 2:] == 0).all() and np.abs(reg[:, 0]).max() > 0.2
