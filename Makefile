# The two commands a newcomer runs (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# On a GPU notebook, `make demo VENV_FLAGS=--system-site-packages` lets the environment see the
# torch already installed there, which `setup` then keeps.
VENV_FLAGS ?=
# The package index torch comes from when the environment has none; empty means pip's own
# configuration. On the public index, Linux's torch is the CUDA build with several GB of nvidia-*
# packages: a CPU-only machine wants TORCH_INDEX=https://download.pytorch.org/whl/cpu.
TORCH_INDEX ?=
TORCH := torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
# Marks a finished install. The install is editable, so only a change to pyproject.toml or to the
# C kernel (compiled by the install) needs another.
STAMP := $(VENV)/.ichprep-installed
DEMO ?= demo-out

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)

# torch first, pinned, and only where no torch is installed: the `torch>=2.1` range of the extras is
# then already satisfied and never pulls another build; an existing torch is kept.
$(STAMP): pyproject.toml ichprep/convert/render/_area.c | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/ichprep demo $(DEMO)

# The linter (configured in pyproject.toml) first: a style slip fails in a second, not after the suite.
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/convert_speed.py

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
