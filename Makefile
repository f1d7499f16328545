# Two commands do everything on a fresh machine with only python3:
#   make demo   - the main job (train a jaxconv CNN on the bundled digits data)
#   make test   - the test suite (under 10 minutes on 2 cores)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: install test test-full lint format demo bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff format --check jaxconv tests conftest.py
	$(BIN)/ruff check jaxconv tests conftest.py

format: $(STAMP)
	$(BIN)/ruff format jaxconv tests conftest.py
	$(BIN)/ruff check --fix jaxconv tests conftest.py

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n 2 -p no:cacheprovider $(ARGS)

test-full: $(STAMP)
	JAXCONV_FULL=1 $(BIN)/python -m pytest -q -n 2 -p no:cacheprovider $(ARGS)

demo: $(STAMP)
	$(BIN)/python -m jaxconv.demo $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m jaxconv.bench $(ARGS)

bench-quick: $(STAMP)
	$(BIN)/python -m jaxconv.bench --quick $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
