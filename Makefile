# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The pinned versions (constraints.txt); `make venv CONSTRAINTS=` installs unpinned.
CONSTRAINTS ?= constraints.txt

.PHONY: demo test lint bench golden results clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[test,distributed]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m refimpl demo

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/ops.py --dtype float32
	$(PY) benchmarks/update_step.py
	$(PY) benchmarks/meta_gradient.py

golden: $(STAMP)
	$(PY) -m refimpl golden export tests/golden

# docs/results.md and the README's results summary, from docs/transfer/evaluation/report.json.
results: $(STAMP)
	$(PY) -m refimpl.evaluation.results_page

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis .ruff_cache
