# The two commands for a fresh machine (see README):
#   make demo   set up, then run the whole pipeline on the offline builtin data
#   make test   set up, then run the tests (all of them: what CI runs)
#   make test-fast  the edit loop: every test not marked slow, on 2 cores (under 90 s)
#   make lock   re-resolve the dependencies into requirements.lock (docs/dependencies.md says when)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DB     ?= demo.duckdb
PIP_VERSION   := 26.3
TORCH_VERSION := 2.13.0

.PHONY: setup demo test test-fast bench lock clean

setup: $(VENV)/.installed

# The tested stack, from the lock. torch goes first, by itself: `torch==2.13.0` takes the CPU build
# where one lies on disk (an unpinned torch would pull the CUDA build); the lock then pins
# everything else (--no-deps: nothing unpinned sneaks in; pip check proves the lock complete), and
# matstore itself is the checkout.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==$(PIP_VERSION)
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q --no-deps -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
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

# Resolve the newest versions pyproject.toml allows (all extras but mp) in a scratch venv and pin
# them; then run `make test` on the new lock before committing it.
lock:
	set -e; v=$$(mktemp -d /tmp/matstore-lock.XXXXXX); trap 'rm -rf "$$v"' EXIT; \
	$(PYTHON) -m venv $$v/venv; \
	$$v/venv/bin/pip install -q --upgrade pip==$(PIP_VERSION); \
	$$v/venv/bin/pip install -q torch==$(TORCH_VERSION); \
	$$v/venv/bin/pip install -q -e '.[dev]'; \
	$$v/venv/bin/pip check; \
	scripts/freeze_lock.sh $$v/venv/bin/python > requirements.lock.new; \
	mv requirements.lock.new requirements.lock
	git diff --stat requirements.lock || true

clean:
	rm -rf $(VENV) dist build *.egg-info $(DB)
