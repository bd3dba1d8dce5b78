# make demo: a real study on real handwritten digits, bundled with scikit-learn (results/demo/); make test: the whole test suite.
# Each target first sets up .venv itself (from nothing if need be) and does it once: a second run
# installs nothing. An existing .venv that already has the project and its test extra is kept as it is.
#
#   make demo        .venv/bin/python search.py study demo --preset demo
#   make test        .venv/bin/python -m pytest -q            (as .ci/run)
#   make test-fast   the fast core suite: no slow, ray, browser, postgres or gpu tests
#   make lint        ruff check, ruff format --check and mypy nas/report (as .ci/run)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FAST := not slow and not ray and not browser and not postgres and not gpu
# The venv is set up when this runs: torch, the project installed from this checkout (-I: not
# merely found in the working directory) and what the test extra brings.
READY := import pathlib, torch, torchvision, sklearn, jinja2, softshare, nas, optuna, pytest, selenium, psycopg2, ray, ruff, mypy; \
	assert pathlib.Path(nas.__file__).resolve().parent == pathlib.Path('$(CURDIR)/nas').resolve()

.PHONY: demo test test-fast lint setup

demo: $(STAMP)
	$(PY) search.py study demo --preset demo

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "$(FAST)"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy nas/report

setup: $(STAMP)

# torch and torchvision first, pinned to the releases this project is tested with (as .ci/run).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@set -e; if $(PY) -I -c "$(READY)" 2>/dev/null; then \
		echo "$(VENV): the project and its test extra are installed already"; \
	else \
		$(PY) -I -c "import torch, torchvision" 2>/dev/null || \
			$(PY) -m pip install torch==2.14.1 torchvision==0.29.1; \
		$(PY) -m pip install -e '.[test]'; \
	fi
	@touch $@
