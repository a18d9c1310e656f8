# ferrogate: the two commands are `make serve` and `make test`.
# Everything else is a building block of those two.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEPS   := $(VENV)/.deps-installed
HOST   ?= 127.0.0.1
PORT   ?= 8080
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: serve test build setup test-rust test-python lint fmt clean bench-failover bench-plugins bench-observability bench-inprocess bench bench-instructions

## Create the virtualenv with the build and test tools.
$(DEPS): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "maturin>=1.9,<2" "pytest>=8" "pytest-asyncio>=0.24" "openai>=1.40" "anthropic>=0.40" "PyYAML>=6" "httpx>=0.27" "h2>=4" \
		"prometheus-client>=0.20" "opentelemetry-proto>=1.27" "grpcio>=1.60" "google-genai>=1.0"
	scripts/install-services.sh
	touch $(DEPS)

setup: $(DEPS)

## Build the wheel and install it into the virtualenv (as `pip install .` does for users). The
## wheel bundles the native `ferrogate` executable, which `ferrogate serve` runs when it can.
## Both are built with the `dist` profile (whole-program LTO, see Cargo.toml).
NATIVE := python/ferrogate/_bin/ferrogate
TARGET := $(or $(CARGO_TARGET_DIR),target)
build: $(DEPS)
	cargo build --profile dist --bin ferrogate
	mkdir -p $(dir $(NATIVE))
	strip -o $(NATIVE) $(TARGET)/dist/ferrogate 2>/dev/null || cp $(TARGET)/dist/ferrogate $(NATIVE)
	$(BIN)/pip install -q --no-deps --force-reinstall .

## Run the gateway with its built-in defaults (providers from their standard environment variables).
serve: build
	$(BIN)/ferrogate serve --host $(HOST) --port $(PORT)

## Every test: Rust unit and integration tests, then the Python suites against the installed wheel.
test: build test-rust test-python

## Unoptimised: the tests check behaviour (the speed is the benchmarks' business), and this
## build shares nothing with the `dist` one anyway.
test-rust:
	cargo test --all-targets

test-python: build
	scripts/install-services.sh
	$(BIN)/python -m pytest -q

## Failover benchmark: 1000 RPS for 30 s, one deployment killed and restarted (report in bench-results/).
bench-failover: build
	benches/failover.sh 1000 30

## Added latency of plugins (Rust, sync and async Python) and of metrics + log store (reports in bench-results/).
bench-plugins: build
	$(BIN)/python benches/plugins.py

bench-observability: build
	$(BIN)/python benches/observability.py

## Server load: direct vs nginx proxy_pass vs ferrogate serve at 500/2500/5000 RPS, one at a time,
## capacity, streaming first byte (report and plot in bench-results/). `make bench ARGS=--litellm` adds LiteLLM.
bench: build
	VENV_BIN=$(BIN) scripts/install-bench-tools.sh
	$(BIN)/python benches/server_load.py $(ARGS)

## User-space instructions per request under callgrind (deterministic: for comparing builds on a
## noisy machine). `make bench-instructions ARGS="old-binary target/dist/ferrogate"` compares.
bench-instructions: build
	VENV_BIN=$(BIN) scripts/install-bench-tools.sh
	benches/instructions.sh $(ARGS)

## In-process: ferrogate.completion vs the openai SDK direct vs LiteLLM (own venv), latency, throughput, import cost.
bench-inprocess: build
	$(BIN)/python benches/inprocess.py

lint:
	cargo fmt --check
	cargo clippy --all-targets --features python -- -D warnings

fmt:
	cargo fmt

clean:
	rm -rf $(VENV) target python/ferrogate/_bin
