# Every target uses the virtual environment in .venv (created by `make setup`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done

.PHONY: setup test demo generate check-generated bench clean

setup: $(STAMP)

# torch first, pinned to the CPU wheel on local disk, so nothing pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[onnx,automl,s3,dev]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

demo: setup
	$(PY) -m optical_inspection.demo

generate: setup
	$(PY) -m generators

check-generated: setup
	$(PY) -m generators --check

bench: setup
	$(PY) benchmarks/data_loading.py
	$(PY) benchmarks/train_eval.py
	$(PY) benchmarks/inference.py

clean:
	rm -rf $(VENV) demo_results oi_jobs .pytest_cache
