# The README's two commands, each doing its own set-up:  make demo  |  make test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
MEMBERS := $(wildcard packages/*/pyproject.toml plugins/*/pyproject.toml)
EDITABLE := -e "packages/diffcore[diffusers,tour,jobs,train]" $(foreach m,$(filter-out packages/diffcore/pyproject.toml,$(MEMBERS)),-e $(dir $(m)))
export OMP_NUM_THREADS ?= 1

.PHONY: demo test lint env clean

$(STAMP): pyproject.toml $(MEMBERS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet --group dev $(EDITABLE)
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/diffcore tour --out build/tour

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --diff .

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build

# One prepared check on a machine with a GPU (issue 20), into OUT (default build/gpu-check); DEVICE=cpu: the dry run
.PHONY: gpu-check
gpu-check:
	bash tools/gpu_check.sh $(if $(OUT),$(OUT),build/gpu-check)
