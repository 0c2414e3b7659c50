# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: demo test venv browser bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Browser tests drive Debian's chromium through Playwright (no browser download).
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian chromium for the browser tests"; \
	  (command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && SUDO=sudo || SUDO=; \
	   $$SUDO apt-get update -qq && $$SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); }

demo: $(STAMP)
	$(VENV)/bin/spade-study demo

test: $(STAMP) browser
	$(PY) -m pytest -q --timeout=900

bench: $(STAMP)
	$(PY) bench/spade_bench.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
