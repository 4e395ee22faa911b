# Two commands do everything on a fresh machine (see README):
#   make demo   -> create .venv, install, run a short CURL job on cartpole-swingup (CPU, < 10 min)
#   make test   -> create .venv, install, run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Headless MuJoCo rendering (Mesa EGL on CPU machines, the NVIDIA EGL driver on GPU machines).
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: setup demo test lint bench

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m curl_agents.train --preset demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/augment_bench.py
