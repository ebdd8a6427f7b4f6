# embspace: `make demo` runs the reference workflow, `make test` runs every test.
# Each target sets itself up (virtualenv, release build of the Rust extension,
# package and dependencies) and is quick when nothing changed.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)
export EMBSPACE_DATA_DIR ?= $(abspath ../shared/data)
# Every cargo command (tests, clippy, maturin) configures PyO3 for the venv's
# interpreter, so their build-script outputs agree and nothing is rebuilt.
export PYO3_PYTHON := $(abspath $(PY))

RUST_SOURCES := Cargo.toml Cargo.lock $(wildcard rust/*/Cargo.toml) $(shell find rust -name '*.rs' 2>/dev/null)
EXT := python/embspace/_core.abi3.so
DEPS_STAMP := $(VENV)/.deps-stamp

.PHONY: all demo test test-rust test-python lint fmt bench wheel clean

all: $(EXT)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(DEPS_STAMP): | $(PY)
	$(PY) -m pip install --quiet "maturin>=1.9.4,<2"
	touch $@

# Release build of the extension, editable install of the package with its
# dependencies and the dev extras (tests, lint, notebook, TUI).
$(EXT): $(RUST_SOURCES) pyproject.toml $(DEPS_STAMP)
	$(VENV)/bin/maturin develop --release --extras dev
	test -f $(EXT) && touch $(EXT)

demo: $(EXT)
	$(PY) -m embspace demo

test: test-rust lint test-python

# The binding's unit tests embed Python: they link the libpython of the venv's
# interpreter (PYO3_PYTHON) and load it from its LIBDIR. Debug profile, so they
# do not rebuild the release artifacts maturin shares the target folder with.
test-rust: | $(PY)
	cargo test --release -p embspace-core
	cargo test --release -p embspace-core --features phase-cycles phases
	LD_LIBRARY_PATH="$$($(PY) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" \
		cargo test -p embspace-py
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p embspace-core --all-targets --features phase-cycles -- -D warnings

# stubtest: python/embspace/_core.pyi against the compiled module (names,
# parameters, defaults, __all__), with no allowlist. mypy: the package at the
# strictness of [tool.mypy] in pyproject.toml.
lint: $(EXT)
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	cargo fmt --all --check
	cd python && ../$(VENV)/bin/lint-imports --no-cache ../pyproject.toml
	$(PY) -m mypy.stubtest embspace._core
	$(VENV)/bin/mypy

test-python: $(EXT)
	$(PY) -m pytest -q

fmt: $(EXT)
	$(VENV)/bin/ruff format python tests benches
	$(VENV)/bin/ruff check --fix python tests benches
	cargo fmt --all

bench: $(EXT)
	$(PY) -m pip install --quiet -r benches/requirements.txt
	cargo bench -p embspace-core
	$(PY) benches/run_all.py

wheel: $(DEPS_STAMP)
	$(VENV)/bin/maturin build --release --out dist

clean:
	rm -rf target dist $(VENV) $(EXT)
