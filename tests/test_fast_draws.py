"""The batch drawing of meta-training against its plain, batch-by-batch definition: bit for bit.

- GlyphSource.render (chunked, broadcast coordinates, padded gathers, the
  2 x 2 mean written out) against render_plain, both dtypes, both
  supersample factors, angles and shifts at and past the edges;
- draw_unroll (every random number first, then all rows of the unroll in
  one call) against draw_unroll_plain (one batch at a time): the same
  arrays and the same generator state afterwards, with and without the
  input augmentation, on glyphs and on an array-backed dataset;
- Dataset.realise against labeled_batch / unlabeled_batch.
Each comparison is checked to fail when its input is perturbed by one part
in 10^7.
"""
import dataclasses

import numpy as np
import pytest

from refimpl.data import get_dataset
from refimpl.data.glyphs import GlyphSource
from refimpl.train import init_state, train_preset
from refimpl.train.tasks import dataset, draw_unroll, draw_unroll_plain, rng_from_state


def same_bytes(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def glyph_source():
    return dataset("glyphs").source


def render_cases(rng, n_images, n):
    idx = rng.integers(0, n_images, n)
    angle = rng.uniform(-180, 180, n)
    dx, dy = rng.uniform(-7, 7, (2, n))
    k = min(n, 6)
    angle[:k] = [0, 90, -90, 180, 30, 0][:k]      # exact quarter turns put samples on the edges
    dx[:k] = [0, 0, 0.5, 7, -7, 0.25][:k]
    return idx, angle, dx, dy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, GlyphSource.RENDER_CHUNK + 3])
def test_render_equals_render_plain_bit_for_bit(glyph_source, dtype, n):
    rng = np.random.default_rng(n)
    idx, angle, dx, dy = render_cases(rng, len(glyph_source.labels["train"]), n)
    fast = glyph_source.render(idx, "train", angle, dx, dy, dtype)
    assert same_bytes(fast, glyph_source.render_plain(idx, "train", angle, dx, dy, dtype))
    # the check can fail: a rotation one part in 10^7 off changes some pixel
    assert not same_bytes(fast, glyph_source.render_plain(idx, "train", angle * (1 + 1e-7) + 1e-7, dx, dy, dtype))


def test_render_equals_render_plain_with_supersample_4():
    src = GlyphSource(chars="AB0+", supersample=4)
    rng = np.random.default_rng(4)
    idx, angle, dx, dy = render_cases(rng, len(src.labels["test"]), 9)
    assert same_bytes(src.render(idx, "test", angle, dx, dy), src.render_plain(idx, "test", angle, dx, dy))


TRAIN_CASES = {
    "small": ("small", {}),
    "tiny": ("tiny", {}),
    "small, every augmentation": ("small", dict(p_x_shift=1.0, p_example_dropout=1.0, p_task_dropout=1.0)),
    "tiny, some augmentation, some permuted": ("tiny", dict(p_x_shift=0.5, p_example_dropout=0.5,
                                                            p_task_dropout=0.5, p_permute=0.5)),
    "digits (array source)": ("tiny", dict(datasets=("digits",), n_way=(3, 5))),
}


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_draw_unroll_equals_the_plain_draws_bit_for_bit(case):
    name, changes = TRAIN_CASES[case]
    tc = dataclasses.replace(train_preset(name), **changes)
    state = init_state(tc)
    for ts in state.tasks[:2]:
        for U in (1, 3):
            rng_fast, rng_plain = rng_from_state(ts.rng_state), rng_from_state(ts.rng_state)
            fast = draw_unroll(tc, ts.task, U, rng_fast)
            plain = draw_unroll_plain(tc, ts.task, U, rng_plain)
            for name_, a, b in zip(("x", "x_a", "x_b", "y_a", "y_b"), fast, plain):
                assert same_bytes(a, b), f"{case}, U = {U}: {name_} differs"
                assert a.flags.c_contiguous
            assert rng_fast.bit_generator.state == rng_plain.bit_generator.state
            # the comparison can fail: the plain draws from a generator one step ahead differ
            ahead = rng_from_state(ts.rng_state)
            ahead.random()
            assert not same_bytes(draw_unroll_plain(tc, ts.task, U, ahead)[0], fast[0])


def test_realise_equals_the_batch_methods():
    view = get_dataset("glyphs_rotation").subset([3, 1, 4]).permuted(np.random.default_rng(0).permutation(196))
    rng = np.random.default_rng(5)
    requests = [view.labeled_request(rng, 4), view.unlabeled_request(rng, 6), view.labeled_request(rng, 2)]
    state_after = rng.bit_generator.state
    got = view.realise(requests, dtype=np.float64)
    rng = np.random.default_rng(5)
    want = [view.labeled_batch(rng, 4, dtype=np.float64), view.unlabeled_batch(rng, 6, dtype=np.float64),
            view.labeled_batch(rng, 2, dtype=np.float64)]
    assert rng.bit_generator.state == state_after
    assert same_bytes(got[1], want[1])
    for i in (0, 2):
        assert same_bytes(got[i][0], want[i][0]) and same_bytes(got[i][1], want[i][1])
