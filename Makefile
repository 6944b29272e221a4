# Two commands on a fresh machine (python3.11, make, package registries):
#   make serve   install, pull models, migrate, run the API on 127.0.0.1:8000 (SQLite + ./var)
#   make test    install, pull models, run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp
MODELS_STAMP := $(VENV)/.models-stamp
PYTEST_ARGS ?=

.PHONY: install models serve test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when the dependency files change (idempotent: a second run does nothing).
$(STAMP): requirements.in constraints.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements.in
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(STAMP)

# Pulls model weights into $${SONGGATE_MODEL_DIR:-var/models}, verifying every sha256 (no-op when present).
models: install
	$(BIN)/songgate models pull

serve: install models
	$(BIN)/songgate db upgrade
	$(BIN)/songgate serve

test: install models
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

bench: install models
	$(BIN)/python benchmarks/checks.py && $(BIN)/python benchmarks/effects.py && $(BIN)/python benchmarks/voiceprint.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
