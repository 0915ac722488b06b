# pgentra. `make demo` shows the passwordless flow end to end; `make test` runs every suite.
SHELL := /bin/bash
CARGO ?= cargo
HARNESS := tests/harness/with-harness.sh

.PHONY: all deps build demo test test-rust test-e2e test-oracle bench clean

all: build

deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --release --locked -p pgentra-cli -p pgentra-emulator

demo: build
	@$(HARNESS) scripts/demo.sh

# Every test process runs in a loopback-only network namespace (tests/harness/netns.sh).
test: build
	$(CARGO) test --release --locked --workspace --no-run -q
	$(HARNESS) $(MAKE) --no-print-directory test-rust test-e2e test-oracle

test-rust:
	$(CARGO) test --release --offline --workspace --exclude pgentra-e2e

test-e2e:
	$(CARGO) test --release --offline -p pgentra-e2e -- --test-threads=1

test-oracle:
	python3 -m pytest -q tests/oracle

bench: build
	$(CARGO) bench -p pgentra

clean:
	$(CARGO) clean
