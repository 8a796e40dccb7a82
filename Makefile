# The two commands a newcomer runs (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# On a GPU notebook, `make demo VENV_FLAGS=--system-site-packages` lets the environment see the
# torch already installed there, which `setup` then keeps.
VENV_FLAGS ?=
BIN := $(VENV)/bin
DEMO ?= demo-out

.PHONY: setup demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)

# torch first: the pinned CPU build where no torch is installed, so that the `torch>=2.1`
# range of the extras never pulls CUDA wheels onto a CPU machine; an existing torch is kept.
setup: $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[dev]"

demo: setup
	$(BIN)/ichprep demo $(DEMO)

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/convert_speed.py

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
