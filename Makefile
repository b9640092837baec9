# Two commands do everything on a fresh machine: `make demo` and `make test`.
# `make docs` builds the site (CI runs it), `make lint` runs ruff and mypy.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0

.PHONY: install demo test test-fast docs lint bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first: an unpinned torch would pull several GB of CUDA packages
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -r requirements.txt pytest pytest-xdist
	$(PY) -m pip install --quiet --no-deps -e .
	# the optional front ends' extras, so their tests run too (the core install stays lean),
	# and the contributors' tools: docs (mkdocs) and dev (ruff, mypy, pre-commit)
	$(PY) -m pip install --quiet -e ".[export,tensorboard,napari,docs,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m paulow demo

# The suite runs in TEST_WORKERS pytest-xdist processes (a test file stays on one worker, so its
# fixtures are made once); TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy paulow

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache .ruff_cache .mypy_cache
