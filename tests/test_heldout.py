"""Held-out glyph data: whole font families per split, support and query from different fonts,
class exclusion for controls (the data behind every choice and every glyph evaluation)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from refimpl.data import DATASETS, get_dataset, glyphs
from refimpl.data.glyphs import FAMILIES, FAMILY_SPLITS, GlyphSource, family_of, split_fonts

GLYPH_DATASETS = [n for n in DATASETS if n.startswith("glyphs")]


def _freetype_family(font: str) -> str:
    """The family name the font file itself declares (Computer Modern: one name per face, cm*)."""
    from matplotlib import ft2font
    name = ft2font.FT2Font(str(glyphs.font_dir() / font)).family_name
    return "Computer Modern" if name.startswith("cm") else name.replace("STIXGeneral", "STIX General")


def _lineage(family: str) -> str:
    return family.split()[0]       # DejaVu, STIX, Computer


def test_families_match_the_font_files_and_no_family_is_in_two_splits():
    for fam, files in FAMILIES.items():
        assert {_freetype_family(f) for f in files} == {fam}
    where = {}
    for split, fams in FAMILY_SPLITS.items():
        for fam in fams:
            assert fam not in where, f"{fam} is in {where.get(fam)} and {split}"
            where[fam] = split
    # stricter: families of one design lineage (the DejaVu ones) are in one split
    lineages = {split: {_lineage(f) for f in fams} for split, fams in FAMILY_SPLITS.items()}
    splits = list(lineages)
    for i, a in enumerate(splits):
        for b in splits[i + 1:]:
            assert not lineages[a] & lineages[b]


@pytest.mark.parametrize("name", GLYPH_DATASETS)
def test_every_glyph_dataset_holds_out_whole_families(name):
    src = get_dataset(name).source
    train = {family_of(f) for f in src.fonts["train"]}
    test = {family_of(f) for f in src.fonts["test"]}
    assert train == set(FAMILY_SPLITS["train"])
    assert test in (set(FAMILY_SPLITS["select"]), set(FAMILY_SPLITS["final"]))
    assert not train & test
    # every class has a train glyph and two held-out fonts
    ds = get_dataset(name)
    assert ds.class_counts("train").min() >= 1 and ds.class_counts("test").min() >= 2


def test_a_style_of_a_trained_family_cannot_be_held_out():
    with pytest.raises(ValueError, match="DejaVu Sans"):
        GlyphSource(train_fonts=("DejaVuSans.ttf", "DejaVuSerif.ttf"), test_fonts=("DejaVuSans-BoldOblique.ttf",
                                                                                  "STIXGeneral.ttf"))
    with pytest.raises(ValueError, match="heldout"):
        GlyphSource(heldout="test")


def test_final_split_is_computer_modern_letters_and_digits():
    ds = get_dataset("glyphs_rotation_final")
    assert set(ds.class_names) == set(glyphs.UPPER + glyphs.LOWER + glyphs.DIGITS)
    assert set(ds.source.fonts["test"]) == set(split_fonts("final"))
    assert set(ds.source.fonts["train"]) == set(split_fonts("train"))


# ---------------------------------------------------------------------------------
# support and query are different images
# ---------------------------------------------------------------------------------
class _Recorder:
    """Wraps a source's realise (every draw, one at a time or batched, ends there) to record the
    example indices of each call."""

    def __init__(self, ds, monkeypatch):
        self.calls = []
        src = ds.source
        original = src.realise

        def realise(idx, params, split, dtype):
            self.calls.append(np.array(idx))
            return original(idx, params, split, dtype)
        monkeypatch.setattr(src, "realise", realise)


def _overlap(ds, support_idx, query_idx, k_shot, k_query):
    """Classes whose support and query share a glyph image (the same example index)."""
    n = ds.n_classes
    s, q = support_idx.reshape(n, k_shot), query_idx.reshape(n, k_query)
    return [c for c in range(n) if set(s[c]) & set(q[c])]


def _fonts_differ(ds, support_idx, query_idx):
    fonts = ds.source.fonts["test"]
    return all(fonts[i] != fonts[j] for i in support_idx for j in query_idx
               if ds.source.labels["test"][i] == ds.source.labels["test"][j])


@pytest.mark.parametrize("name, k_shot, k_query", [("glyphs_rotation", 10, 10), ("glyphs_rotation_final", 10, 10),
                                                    ("glyphs_rotation", 1, 20), ("glyphs_math_rotation", 20, 1)])
def test_support_query_batch_never_shows_one_image_twice(name, k_shot, k_query, monkeypatch):
    ds = get_dataset(name).sample_classes(0, 10 if name != "glyphs_math_rotation" else 28)
    rec = _Recorder(ds, monkeypatch)
    for seed in range(5):
        xs, ys, xq, yq = ds.support_query_batch(seed, k_shot, k_query)
        idx = rec.calls[-1]
        m = ds.n_classes * k_shot
        assert xs.shape == (m, ds.n_features) and xq.shape == (ds.n_classes * k_query, ds.n_features)
        assert np.array_equal(ys[:, :ds.n_classes].argmax(1), np.repeat(np.arange(ds.n_classes), k_shot))
        assert np.array_equal(yq[:, :ds.n_classes].argmax(1), np.repeat(np.arange(ds.n_classes), k_query))
        assert _overlap(ds, idx[:m], idx[m:], k_shot, k_query) == []
        assert _fonts_differ(ds, idx[:m], idx[m:])


def test_the_overlap_check_catches_one_batch_split_in_two(monkeypatch):
    # What the evaluation did before: one labeled batch of k_shot + k_query rows per class, split;
    # with 2-4 held-out fonts per class every query is a rotated copy of a support image.
    ds = get_dataset("glyphs_rotation").sample_classes(0, 10)
    rec = _Recorder(ds, monkeypatch)
    ds.labeled_batch(0, 20)
    idx = rec.calls[-1].reshape(10, 20)
    assert _overlap(ds, idx[:, :10].ravel(), idx[:, 10:].ravel(), 10, 10) == list(range(10))


def test_support_query_batch_without_augmentation_is_the_split_labeled_batch():
    ds = get_dataset("digits")
    xs, ys, xq, yq = ds.support_query_batch(3, 5, 7)
    x, y = ds.labeled_batch(3, 12, split="test")
    keep = np.tile(np.arange(12) < 5, ds.n_classes)
    assert np.array_equal(xs, x[keep]) and np.array_equal(xq, x[~keep]) and np.array_equal(yq, y[~keep])
    with pytest.raises(ValueError):
        ds.support_query_batch(0, 100, 100)


def test_a_class_with_one_heldout_font_cannot_give_support_and_query():
    ds = get_dataset("glyphs_rotation")
    pool = ds._by_class["test"]
    one = next(c for c in range(ds.n_classes) if len(pool[c]) == 2)
    ds._by_class["test"] = list(pool)
    ds._by_class["test"][one] = pool[one][:1]
    ds.class_counts = lambda split="train": np.array([len(p) for p in ds._by_class[split]])
    with pytest.raises(ValueError, match="at least 2 different"):
        ds.support_query_batch(0, 10, 10)


@pytest.mark.parametrize("where", ["fewshot", "benchmark", "probe", "objective"])
def test_every_glyph_evaluation_draws_support_and_query_from_different_fonts(where, monkeypatch):
    """Each evaluation path draws its labeled rows through support_query_batch only."""
    from refimpl.config import Config
    from refimpl.data.base import Dataset

    calls = {"sq": 0}
    original = Dataset.support_query_batch

    def counting(self, *a, **k):
        calls["sq"] += 1
        return original(self, *a, **k)

    def forbidden(self, *a, **k):
        raise AssertionError("a glyph evaluation drew a labeled batch that support and query share")
    monkeypatch.setattr(Dataset, "support_query_batch", counting)
    monkeypatch.setattr(Dataset, "labeled_batch", forbidden)
    ds = get_dataset("glyphs_rotation").sample_classes(0, 5)
    cfg = Config(layer_sizes=(196, 12, 8), batch_size=8)
    if where == "fewshot":
        from refimpl.evaluation.fewshot import few_shot_accuracy
        few_shot_accuracy(None, ds, cfg, 0, k_shot=3, n_trials=2)
    elif where == "benchmark":
        from refimpl.evaluation.benchmark import benchmark
        benchmark(None, cfg, ds, seeds=range(1), k_shot=3, k_query=3, n_trials=2, baselines=("raw",),
                  progress=False)
    elif where == "probe":
        from refimpl.evaluation.probe import PROBE, probe_rule
        probe_rule(None, cfg, inner_steps=(0,), probe={**PROBE, "n_way": 4, "k_shot": 3, "k_query": 3})
    else:
        from refimpl.evaluation.diagnostics import objective_comparison
        objective_comparison(ds, n_way=3, k_shot=3, n_tasks=2, layer_sizes=(196, 12, 8))
    assert calls["sq"] >= 1


# ---------------------------------------------------------------------------------
# class exclusion (controls)
# ---------------------------------------------------------------------------------
def test_exclude_classes_removes_a_named_set_and_names():
    full = get_dataset("glyphs_rotation")
    ds = get_dataset("glyphs_rotation", exclude_classes=("digits", "A"))
    assert set(ds.class_names) == set(full.class_names) - set(glyphs.DIGITS) - {"A"}
    assert ds.n_classes == full.n_classes - 11
    x, y = ds.labeled_batch(0, 2)
    assert y.shape[1] == ds.n_classes + ds.n_reg
    with pytest.raises(ValueError, match="digitz"):
        get_dataset("glyphs_rotation", exclude_classes=("digitz",))
    with pytest.raises(ValueError, match="leaves no class"):
        get_dataset("glyphs_currency_rotation", exclude_classes=("currency",))


def test_exclude_classes_keeps_digits_out_of_every_meta_training_task():
    from refimpl.train import train_preset
    from refimpl.train.tasks import dataset, draw_unroll, sample_task

    tc = train_preset("tiny").replace(datasets=("glyphs_rotation", "glyphs_letters_rotation"),
                                      n_way=(20, 30), exclude_classes=("digits",))
    rng = np.random.default_rng(0)
    names = dataset("glyphs_rotation").source.class_names
    drawn = set()
    for _ in range(60):
        task, _ = sample_task(tc, 0, rng)
        drawn |= {names[c] for c in task.classes}
        _, _, _, y_a, _ = draw_unroll(tc, task, 1, rng)
        assert y_a.shape[-1] == task.n_way + 4
    assert drawn and not drawn & set(glyphs.DIGITS)
    # the same draws without the exclusion do reach digits (the check can fail)
    rng = np.random.default_rng(0)
    plain = tc.replace(exclude_classes=())
    drawn = set()
    for _ in range(60):
        drawn |= {names[c] for c in sample_task(plain, 0, rng)[0].classes}
    assert drawn & set(glyphs.DIGITS)


def test_exclude_classes_round_trips_and_old_configs_load_without_it():
    from refimpl.train import TrainConfig, train_preset

    tc = train_preset("small").replace(exclude_classes=("digits",))
    assert TrainConfig.from_json(tc.to_json()) == tc
    d = json.loads(train_preset("small").to_json())
    del d["exclude_classes"]
    assert TrainConfig.from_dict(d).exclude_classes == ()
    with pytest.raises(ValueError, match="exclude_classes"):
        train_preset("small").replace(exclude_classes="digits")
    from refimpl.train.tasks import training_view
    with pytest.raises(ValueError, match="digitz"):
        training_view(train_preset("small").replace(exclude_classes=("digitz",)), "glyphs_rotation")


def test_recipe_flag_excludes_digits_and_rejects_unknown_names(tmp_path, capsys):
    from refimpl.cli.recipe import main

    run_dir = tmp_path / "control"
    assert main([str(run_dir), "--preset", "tiny", "--steps", "2", "--snapshot-every", "1",
                 "--exclude-classes", "digits"]) == 0
    stored = json.loads((run_dir / "train_config.json").read_text())
    assert stored["exclude_classes"] == ["digits"] and stored["n_steps"] == 2
    # resuming with other flags is refused, with the same ones continues
    assert main([str(run_dir), "--preset", "tiny", "--steps", "3"]) == 2
    assert "exclude_classes" in capsys.readouterr().err
    assert main([str(run_dir), "--preset", "tiny", "--steps", "3", "--exclude-classes", "digits"]) == 0
    bad = tmp_path / "bad"
    assert main([str(bad), "--preset", "tiny", "--exclude-classes", "digitz"]) == 2
    assert not Path(bad).exists()


# ---------------------------------------------------------------------------------
# copying a run into the repository for resuming
# ---------------------------------------------------------------------------------
def _load_example(name):
    import importlib.util
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(name, root / "examples" / "transfer" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_collect_run_copies_what_resuming_needs_and_compresses_large_logs(tmp_path):
    import gzip

    from refimpl.cli.recipe import main
    from refimpl.train import load_checkpoint

    collect = _load_example("collect_run")
    run_dir = tmp_path / "run"
    assert main([str(run_dir), "--preset", "tiny", "--steps", "3", "--snapshot-every", "2"]) == 0
    with open(run_dir / "log.jsonl", "ab") as f:
        f.write(b'{"partial line of a run still writing')       # not copied
    info = collect.collect(run_dir, tmp_path / "copy")
    assert info["meta_steps"] == 3
    copy = tmp_path / "copy"
    for name in ("checkpoint.npz", "train_config.json", "theta.npz", "log.jsonl", "probe.jsonl",
                 "thetas/theta_00002.npz"):
        assert (copy / name).is_file(), name
    assert (copy / "log.jsonl").read_bytes().endswith(b"\n")
    assert load_checkpoint(copy / "checkpoint.npz")[0].step == 3
    # the copy resumes: a longer run from it continues where the original stopped
    assert main([str(copy), "--preset", "tiny", "--steps", "4", "--snapshot-every", "2"]) == 0
    assert load_checkpoint(copy / "checkpoint.npz")[0].step == 4
    collect.LIMIT = 100                                          # a "large" log is compressed
    collect.collect(run_dir, tmp_path / "small_limit")
    assert not (tmp_path / "small_limit" / "log.jsonl").exists()
    with gzip.open(tmp_path / "small_limit" / "log.jsonl.gz", "rt") as f:
        assert len(f.read().splitlines()) == 3


def test_unaugmented_tasks_never_draw_a_class_with_fewer_than_k_shot_examples():
    from refimpl.train import train_preset
    from refimpl.train.tasks import dataset, draw_unroll, sample_task

    tc = train_preset("mixture").replace(datasets=("glyphs_plain",), n_way_choices=(30,))
    full = dataset("glyphs_plain")
    small = [c for c in range(full.n_classes) if full.class_counts("train")[c] < tc.k_shot]
    assert small, "the check needs a class with fewer than k_shot train glyphs"
    rng = np.random.default_rng(0)
    for _ in range(40):
        task, _ = sample_task(tc, 0, rng)
        assert not set(task.classes) & set(small)
    draw_unroll(tc, task, 1, rng)
