# Every target uses the virtual environment in .venv (created by `make setup`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
LOCK := requirements.lock
PIP_VERSION := 26.3
UV_VERSION := 0.13.9

.PHONY: setup test lint demo generate check-generated bench lock clean pretrained

setup: $(STAMP)

# Exactly what the lock names (torch is its CPU wheel from local disk), then this package without resolving
# anything more, then a consistency check: a fresh machine gets the same versions the suite last passed with.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q pip==$(PIP_VERSION)
	$(PY) -m pip install -q --no-deps -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

# Re-resolve the lock from pyproject.toml and requirements-pins.txt (newest releases that fit), for Linux
# x86_64 and Python 3.11; then `make setup test` and commit requirements.lock when the suite passes.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv==$(UV_VERSION)
	$(PY) -m uv pip compile pyproject.toml requirements-pins.txt --extra onnx --extra automl --extra s3 --extra mcp --extra generate --extra dev \
	    --python-version 3.11 --python-platform x86_64-manylinux_2_28 --find-links /opt/wheels \
	    --custom-compile-command "make lock" --quiet -o $(LOCK)

# Lint first (ruff, then mypy on the configured tree: both must be clean), then the suite.
test: setup lint
	$(PY) -m pytest -q

# ruff (pyflakes, pycodestyle, bugbear, blind except) on the whole tree, then mypy on the packages
# (configuration in pyproject.toml). Not part of `test` yet.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

demo: setup
	$(PY) -m optical_inspection.demo

# Rebuild the bundled pretrained weights (synthetic pairs only; deterministic for 2 torch threads).
pretrained: setup
	OMP_NUM_THREADS=2 $(PY) -m optical_inspection.models.pretrain --threads 2

generate: setup
	$(PY) -m generators

check-generated: setup
	$(PY) -m generators --check

bench: setup
	$(PY) benchmarks/data_loading.py
	$(PY) benchmarks/train_eval.py
	$(PY) benchmarks/int8_accuracy.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/plan_latency.py

clean:
	rm -rf $(VENV) demo_results oi_jobs .pytest_cache
