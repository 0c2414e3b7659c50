# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check venv browser bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's chromium (Playwright drives it, no browser download) and pdflatex (the LaTeX-tables test);
# the accessibility tests inject npm's axe-core (scripts/install_axe.sh, into .cache/axe).
browser:
	sh scripts/install_debian_packages.sh
	sh scripts/install_axe.sh

demo: $(STAMP)
	$(VENV)/bin/spade-study demo

# The whole suite, slow and browser tests included; prints the 15 slowest tests.
test: $(STAMP) browser
	$(PY) -m pytest -q --timeout=900 --durations=15

# The fast loop: everything not marked slow (at most 2 minutes on 2 cores).
check: $(STAMP) browser
	$(PY) -m pytest -q --timeout=300 -m "not slow" --durations=10

bench: $(STAMP)
	$(PY) bench/spade_bench.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
