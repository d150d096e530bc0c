# The two commands for a fresh machine (see README):
#   make demo   set up, then run the whole pipeline on the offline builtin data
#   make test   set up, then run the tests (all of them: what CI runs)
#   make test-fast  the edit loop: every test not marked slow, on 2 cores (under 90 s)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DB     ?= demo.duckdb

.PHONY: setup demo test test-fast bench clean

setup: $(VENV)/.installed

# torch is pinned and installed first: an unpinned torch would pull the CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/matstore demo --db $(DB)

test: setup
	$(BIN)/python -m pytest -q -ra

# two workers, one test file each at a time (module fixtures are built once)
test-fast: setup
	$(BIN)/python -m pytest -q -ra -m "not slow" -n 2 --dist loadfile

bench: setup
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) dist build *.egg-info $(DB)
