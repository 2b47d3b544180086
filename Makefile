# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The pinned versions (constraints.txt); `make venv CONSTRAINTS=` installs unpinned.
CONSTRAINTS ?= constraints.txt

DOCS_STAMP := $(VENV)/.installed-docs
SITE   := docs/_build/html

.PHONY: demo test lint bench golden results clean venv docs docs-test

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[test,distributed]'
	touch $(STAMP)

# The docs extra on top of the test environment (re-run when pyproject.toml changes).
$(DOCS_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[test,distributed,docs]'
	touch $(DOCS_STAMP)

# The site, offline, nitpicky, warnings as errors; then every internal link of the result.
docs: $(DOCS_STAMP)
	$(PY) -m sphinx -n -W --keep-going -q -b html -c docs . $(SITE)
	$(PY) docs/check_links.py $(SITE)
	@echo "the site: $(SITE)/index.html"

# The checks that need the built site: maths typeset in a headless browser, a broken link fails.
docs-test: docs
	$(PY) -m pytest -m docs tests/test_docs_site.py

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

# By hand, not part of make test: apply each mistake of tests/mutations/mutations.toml, run its tests.
mutations: $(STAMP)
	$(PY) tests/mutations/run.py

golden: $(STAMP)
	$(PY) -m refimpl golden export tests/golden

# docs/results.md and the README's results summary, from docs/transfer/evaluation/report.json.
results: $(STAMP)
	$(PY) -m refimpl.evaluation.results_page

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis .ruff_cache docs/_build
