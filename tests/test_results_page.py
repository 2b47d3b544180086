"""docs/results.md and the README's results summary are what the committed evaluation report gives."""
import copy
import json
import math
import shutil
from pathlib import Path

import pytest

from refimpl.evaluation import results_page as rp
from refimpl.evaluation.benchmark import paired_difference

ROOT = Path(__file__).resolve().parent.parent
REPORT = json.loads((ROOT / rp.REPORT).read_text())


def test_the_committed_page_is_the_generated_one():
    assert (ROOT / rp.PAGE).read_text() == rp.results_page(REPORT), \
        "docs/results.md is stale: run python -m refimpl.evaluation.results_page"


def test_the_readme_summary_is_the_generated_one():
    readme = (ROOT / rp.README).read_text()
    assert rp.with_summary(readme, rp.readme_summary(REPORT)) == readme, \
        "the README's results summary is stale: run python -m refimpl.evaluation.results_page"


def test_the_readme_summary_carries_the_headline_numbers():
    """Read the README, not the generator: the digits row of the report appears in it."""
    digits = {r["method"]: r for r in REPORT["datasets"]["digits"]["summary"]}
    summary = (ROOT / rp.README).read_text().split(rp.SUMMARY_BEGIN)[1].split(rp.SUMMARY_END)[0]
    line = next(x for x in summary.splitlines() if x.startswith("- digits"))
    for number in (f"{digits['rule@100']['acc']:.3f}", f"{digits['rule@0']['acc']:.3f}",
                   f"{digits['rule@100']['delta']:+.3f}"):
        assert number in line, (number, line)


def _perturbed(report, delta):
    """The report with one seed's rule accuracy on digits moved by ``delta``, its summary recomputed."""
    from refimpl.evaluation.benchmark import summarize
    out = copy.deepcopy(report)
    res = out["datasets"]["digits"]
    res["per_seed"][0]["acc"]["rule@100"] += delta
    res["summary"] = summarize(res["per_seed"])
    return out


def test_a_changed_number_in_the_report_changes_page_and_summary():
    changed = _perturbed(REPORT, 0.02)          # the mean moves by 0.002: the third decimal changes
    assert rp.results_page(changed) != rp.results_page(REPORT)
    assert rp.readme_summary(changed) != rp.readme_summary(REPORT)


def test_check_passes_on_the_committed_files_and_fails_after_a_change(tmp_path, capsys):
    for name in (rp.REPORT, rp.PAGE, rp.README):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    paths = [f"--{k}={tmp_path / v}" for k, v in (("report", rp.REPORT), ("page", rp.PAGE), ("readme", rp.README))]
    assert rp.main([*paths, "--check"]) == 0
    (tmp_path / rp.REPORT).write_text(json.dumps(_perturbed(REPORT, 0.02)))
    assert rp.main([*paths, "--check"]) == 1
    assert "docs/results.md differs" in capsys.readouterr().err
    assert rp.main(paths) == 0                  # regenerate ...
    assert rp.main([*paths, "--check"]) == 0    # ... and it agrees again
    assert (tmp_path / rp.PAGE).read_text() != (ROOT / rp.PAGE).read_text()


def test_a_missing_report_is_one_line_and_status_2(tmp_path, capsys):
    assert rp.main([f"--report={tmp_path / 'none.json'}", "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.json" in err


def test_a_readme_without_markers_is_refused():
    with pytest.raises(ValueError, match="markers"):
        rp.with_summary("# a README\n", "summary")


def test_paired_difference_by_hand():
    per_seed = [{"acc": {"a": 0.5, "b": 0.4}}, {"acc": {"a": 0.7, "b": 0.4}}, {"acc": {"b": 0.9}}]
    d = paired_difference(per_seed, "a", "b")          # differences 0.1 and 0.3; the third seed has no a
    assert d["n"] == 2 and d["better"] == 2
    assert math.isclose(d["delta"], 0.2) and math.isclose(d["delta_se"], 0.1)
    assert paired_difference(per_seed, "b", "a")["better"] == 0
