# pgentra. `make demo` shows the passwordless flow end to end; `make test` runs every suite.
SHELL := /bin/bash
CARGO ?= cargo
HARNESS := tests/harness/with-harness.sh
# One package selection for every cargo build and test, so that features unify the same way and
# `make test` reuses what `make build` compiled. Language bindings are built and tested by their
# own tool chains (maturin, napi, ...).
SEL := --workspace $(foreach b,$(wildcard bindings/*/Cargo.toml),--exclude pgentra-$(notdir $(patsubst %/,%,$(dir $(b)))))

.PHONY: all deps build demo test test-rust test-oracle test-c bench clean

all: build

deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --release --locked $(SEL)

demo: build
	@$(HARNESS) scripts/demo.sh

# Every test process runs in a loopback-only network namespace (tests/harness/netns.sh).
test: build
	$(CARGO) test --release --locked $(SEL) --no-run -q
	$(HARNESS) $(MAKE) --no-print-directory test-rust test-oracle test-c

# Unit, property, vector, emulator and end-to-end tests (one thread: the e2e tests share the
# emulator's counters).
test-rust:
	$(CARGO) test --release --offline $(SEL) -- --test-threads=1

test-oracle:
	python3 -m pytest -q tests/oracle

# The C ABI: the whole API from C, against the .so and the .a, then under valgrind.
test-c:
	crates/pgentra-capi/tests/c/run.sh

bench: build
	$(CARGO) bench -p pgentra

clean:
	$(CARGO) clean
