# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint unit slow bench clean

$(BIN)/tailored: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $@

demo: $(BIN)/tailored  ## generate a sample shop, import, train, evaluate, serve on :8000
	$(BIN)/tailored demo

test: lint unit  ## linters, type checks, import contracts and the test suite

lint: $(BIN)/tailored
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(BIN)/tailored
	$(BIN)/python -m pytest -q

slow: $(BIN)/tailored  ## the long tests too
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: $(BIN)/tailored
	$(BIN)/python benchmarks/skeleton.py

clean:
	rm -rf $(VENV) tailored.db* tailored_models sample_shop
