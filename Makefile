# pgentra. `make demo` shows the passwordless flow end to end; `make test` runs every suite.
SHELL := /bin/bash
CARGO ?= cargo
HARNESS := tests/harness/with-harness.sh
# One package selection for every cargo build and test, so that features unify the same way and
# `make test` reuses what `make build` compiled. Language bindings are built and tested by their
# own tool chains (maturin, napi, ...).
SEL := --workspace $(foreach b,$(wildcard bindings/*/Cargo.toml),--exclude pgentra-$(notdir $(patsubst %/,%,$(dir $(b)))))

.PHONY: all deps build-core build-platforms build demo test test-arm64 test-musl test-platforms test-rust test-reliability test-oracle test-c test-python test-node test-php test-ruby test-go test-dotnet test-java test-servers test-docs bench clean

all: build

deps:
	@scripts/deps.sh
	@python/deps.sh
	@go/deps.sh
	@dotnet/deps.sh
	@php/deps.sh
	@ruby/deps.sh
	@java/deps.sh
	@scripts/platforms-deps.sh

# The CLI, the emulator and the C library (all that `make demo` needs).
build-core:
	@scripts/deps.sh
	$(CARGO) build --release --locked $(SEL)

# Linux aarch64 (glibc 2.17+): the wheel, the CLI, libpgentra.so/.a, the Node.js addon, the JNI
# library for the jar, the Ruby and PHP extensions (cross-compiled against the arm64 root's Ruby
# and PHP); the sdist. The CLI for musl (x86_64 and aarch64), linked statically, which runs here
# (test-musl). musl (Alpine) x86_64 and aarch64: the wheels and the Node.js addons (the addons
# run in test-musl, in a minimal musl system). Needs the network the first time (Rust targets,
# zig, the arm64 Debian root, the musl systems): scripts/platforms-deps.sh. Before node/build.sh
# and java/build.sh, which pack the addons and the JNI library.
build-platforms:
	scripts/platforms-deps.sh
	scripts/build-platforms.sh arm64 musl-cli musl

build: deps build-core build-platforms
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build -s none -O
	python/build.sh
	node/build.sh
	php/build.sh
	ruby/build.sh
	java/build.sh

demo: build-core
	@$(HARNESS) scripts/demo.sh

# Every test process runs in a loopback-only network namespace (tests/harness/netns.sh).
# The harness keeps the shared token cache (issue #16) off for suites written for per-process
# caches (they count identity requests per connector and queue emulator faults for the next
# request). The Rust suites run with it on, as in production: their reset() empties the
# harness's private folder, and tests/e2e/tests/shared_cache.rs tests the sharing itself. Each
# language suite has a shared-cache test file (python/tests/test_shared_cache.py,
# node/test/shared_cache.test.js, ruby/test/shared_cache_test.rb, php/tests/SharedCacheTest.php,
# go/shared_cache_test.go, dotnet/tests/SharedCacheTests.cs, java's SharedCacheTest) that turns
# sharing on for the worker processes it starts, each test with a private folder.
SHARED = PGENTRA_SHARED_CACHE=1

test: build
	$(CARGO) test --release --locked $(SEL) --no-run -q
	$(HARNESS) $(MAKE) --no-print-directory test-rust test-reliability test-oracle test-c test-python test-node test-php test-ruby test-go test-dotnet test-java test-servers test-platforms test-arm64 test-musl test-docs

# Unit, property, vector, emulator and end-to-end tests (one thread: the e2e tests share the
# emulator's counters).
test-rust:
	$(SHARED) $(CARGO) test --release --offline $(SEL) --exclude pgentra-reliability -- --test-threads=1

# Fault matrix, refresh timing, 1,000 callers, fork under load, secret scans (under the
# harness), then every cargo-fuzz target for PGENTRA_FUZZ_SECS (default 10) seconds.
test-reliability:
	$(SHARED) $(CARGO) test --release --offline -p pgentra-reliability -- --test-threads=1
	CARGO_NET_OFFLINE=true fuzz/run.sh

test-oracle:
	python3 -m pytest -q tests/oracle

# The C ABI: the whole API from C, against the .so and the .a, then under valgrind; the
# README's "One vocabulary" C column against the header and the library.
test-c:
	crates/pgentra-capi/tests/c/run.sh
	crates/pgentra-capi/tests/c/vocabulary.sh

# Python: the wheel from dist/python with psycopg2, psycopg 3, asyncpg, SQLAlchemy and Django.
test-python:
	python/test.sh

# Node.js: the packed addon with node-postgres, Sequelize and Knex (node:test).
test-node:
	node/test.sh

# PHP: the extension with pgsql and PDO (PHPUnit).
test-php:
	php/test.sh

# Ruby: the native gem's extension with ruby-pg and ActiveRecord (minitest).
test-ruby:
	ruby/test.sh

# Go over the C ABI: lib/pq connector and pgx BeforeConnect.
test-go:
	go/test.sh

# Java: the JNI jar with pgJDBC's authentication plugin, HikariCP 7 and 6 (JUnit, Maven offline).
test-java:
	java/test.sh

# The cross-built artifacts, checked with readelf (machine, C library, glibc floor, exported
# symbols); test-arm64 and test-musl run them (all but the musl wheels: no musl Python here).
# The Python sdist builds a wheel from nothing but itself (offline), which passes the core and
# token tests.
test-platforms:
	tests/platforms/check.sh
	tests/platforms/sdist.sh

# Linux arm64 under qemu in an arm64 Debian root: the aarch64 wheel with psycopg2, the aarch64
# CLI (tests/e2e's vectors and CLI test), the Ruby extension with ruby-pg, the PHP extension with
# pgsql and PDO, the arm64 Node.js addon with node-postgres, the Java jar in Debian's arm64 JVM
# (its linux-aarch64 JNI library; java/pgentra's JUnit tests with pgJDBC, run by the JUnit
# Platform without Maven).
test-arm64:
	tests/arm64/run.sh

# The static musl CLIs: x86_64 as it is, aarch64 under qemu-user (tests/e2e's vectors and CLI test).
# The musl Node.js addons in a minimal musl system (musl 1.2.5, Node.js for musl; no glibc),
# aarch64 under qemu-user: node-postgres, TLS, the conformance vectors.
test-musl:
	tests/platforms/musl-cli.sh
	tests/platforms/musl-node.sh

# .NET over the C ABI, compiled and run with Mono; ADO.NET output read by DbConnectionStringBuilder.
test-dotnet:
	dotnet/test.sh

# The shared token cache (issue #16) with real servers and processes: gunicorn and PHP-FPM
# serving 500 requests, 64 and 1,000 Python processes at once, a writer killed mid-write.
test-servers:
	tests/servers/test.sh

# The READMEs' code blocks, run as written against the harness after the READMEs' own install
# recipes (tests/docs/run.py; fence info `norun WHY` marks a block that is not meant to run).
test-docs:
	python3 -m unittest -q tests/docs/test_run.py
	python3 tests/docs/run.py

# Criterion benchmarks of the core, then Python, Node.js and Go against the Azure SDKs (bench/results.md).
bench: build
	bench/run.sh

clean:
	$(CARGO) clean
