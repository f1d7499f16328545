# Two commands do everything on a fresh machine with only python3:
#   make demo   - the main job: train a depthwise-separable CNN on the bundled digits
#   make test   - lint and the test suite (under 10 minutes on 2 cores)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=
CODE   := jaxconv tests bench examples conftest.py

.PHONY: install test test-full lint format demo bench bench-quick bench-torch docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/ruff check $(CODE)

format: $(STAMP)
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n 2 -p no:cacheprovider $(ARGS)

test-full: $(STAMP)
	JAXCONV_FULL=1 $(BIN)/python -m pytest -q -n 2 -p no:cacheprovider $(ARGS)

demo: $(STAMP)
	$(BIN)/python examples/demo.py $(ARGS)

# Layer suites and whole networks; ARGS="--save" writes the committed bench/results
# and the README's tables, ARGS="--suite networks" runs the networks alone.
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick $(ARGS)

# PyTorch as a peer in the network table (CPU build; optional, large).
bench-torch: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[torch]'

docs: $(STAMP)
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis bench/out
