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

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# A finished demo is moved to runs/demo.previous; an interrupted one resumes.
demo: $(STAMP)
	@if [ -f runs/demo/summary.json ]; then rm -rf runs/demo.previous; mv runs/demo runs/demo.previous; \
		echo "the previous demo run is in runs/demo.previous"; fi
	$(PY) -m curl_agents.train --preset demo --out runs/demo $$([ -f runs/demo/checkpoints/latest.txt ] && echo --resume)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/augment_bench.py
