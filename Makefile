# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint unit slow bench bench-peers bench-serving clean

$(BIN)/tailored: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,torch,streams,ann,spark]'
	touch $@

demo: $(BIN)/tailored  ## generate a sample shop, import, train, evaluate, serve on :8000
	$(BIN)/tailored demo

test: lint unit spark js  ## linters, type checks, import contracts, the test suite, the JS client's

lint: $(BIN)/tailored
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(BIN)/tailored
	$(BIN)/python -m pytest -q

.PHONY: js
js: $(BIN)/tailored  ## the JavaScript client (clients/js) against a real server; needs Node 20+
	@command -v node >/dev/null || { echo "the JS client's tests need Node.js 20 or later" >&2; exit 1; }
	TAILORED_CLI=$(abspath $(BIN))/tailored node --test clients/js/test/

.PHONY: spark
spark: $(BIN)/tailored  ## the tests that start Spark (local[2]; need Java 17+)
	$(BIN)/python -m pytest -q -m "spark and not slow"

slow: $(BIN)/tailored  ## the long tests too
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: $(BIN)/tailored  ## figures of our own, into benchmarks/results/
	$(BIN)/python benchmarks/skeleton.py
	$(BIN)/python benchmarks/models.py

.venv-bench/bin/python: pyproject.toml
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet torch==2.13.0
	.venv-bench/bin/python -m pip install --quiet -e '.[bench]'
	touch $@

bench-peers: .venv-bench/bin/python  ## tailored beside implicit, LensKit, RecTools and LightGCN
	.venv-bench/bin/python benchmarks/peers.py

# The whole accuracy benchmark is 13 rows (dataset x protocol) of up to 10 systems: some
# 14 hours with tuned peers at 300 s, some 6 with the peers' defaults (RecTools' default
# transformers take most of it). ACCURACY_ARGS runs a part, e.g.
# ACCURACY_ARGS='--datasets ml-100k --protocols temporal'; a run keeps the other rows, and
# ACCURACY_ARGS=--reuse-peers re-runs tailored.tune alone beside the peers' earlier figures
# (and carries on after a stopped run from the peers it finished).
.PHONY: bench-accuracy bench-accuracy-defaults
BUDGET ?= 300
ACCURACY_ARGS ?=
bench-accuracy: .venv-bench/bin/python  ## tailored.tune beside the tuned peers, same budget each
	.venv-bench/bin/python benchmarks/accuracy.py --budget $(BUDGET) --peers tuned $(ACCURACY_ARGS)

bench-accuracy-defaults: .venv-bench/bin/python  ## tailored.tune at 60 s beside the peers' defaults
	.venv-bench/bin/python benchmarks/accuracy.py --budget 60 --peers default $(ACCURACY_ARGS)

bench-serving: $(BIN)/tailored  ## HTTP throughput and latency (needs wrk: apt-get install wrk)
	$(BIN)/python benchmarks/serving.py

clean:
	rm -rf $(VENV) tailored.db* tailored_models sample_shop
