"""The learners' walkthrough runs as a plain script (shrunk meta-training), writes its figures, and
opens as a notebook; the README's usage example runs as written."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WALKTHROUGH = ROOT / "examples" / "walkthrough.py"
FIGURES = ["dataflow.png", "d_and_h.png", "planes.png", "merge_orth_weights.png", "meta_gradient.png",
           "meta_training.png"]


def test_walkthrough_runs_and_draws_every_figure(tmp_path):
    env = dict(os.environ, REFIMPL_WALKTHROUGH_FAST="1", REFIMPL_WALKTHROUGH_OUT=str(tmp_path),
               OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(WALKTHROUGH)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(FIGURES)
    assert all((tmp_path / name).stat().st_size > 5000 for name in FIGURES)
    assert "transcription vs refimpl.update_step" in done.stdout and "meta-steps in" in done.stdout


def test_walkthrough_opens_as_a_notebook_and_its_figures_are_committed():
    import jupytext
    notebook = jupytext.read(WALKTHROUGH)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds.count("markdown") >= 6 and kinds.count("code") >= 8
    readme = (ROOT / "README.md").read_text()
    for name in FIGURES:
        assert (ROOT / "docs" / "walkthrough" / name).is_file(), name
        assert f"(docs/walkthrough/{name})" in readme, name


def test_readme_usage_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Using it from Python"):]
    snippet = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    assert "refimpl.update_step" in snippet
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, cwd=tmp_path,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "layer1/W" in done.stdout and (tmp_path / "theta.npz").is_file()
