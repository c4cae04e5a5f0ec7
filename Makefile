# cs-invoker-pool — developer entry points. See README.md.

CARGO ?= cargo
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
INVOKER := $(TARGET_DIR)/debug/cs-invoker-pool
ESCAPE_TARGET_DIR ?= $(TARGET_DIR)/escape
ESCAPE_CHILD := $(abspath $(ESCAPE_TARGET_DIR))/debug/sandbox-child
DEMO_EVENT ?= {"name":"Sous"}

.PHONY: all build release demo test test-deps escape-child lint fmt bench clean

all: build

## build: debug build of the supervisor and sandbox-child (what demo and test use)
build:
	$(CARGO) build --workspace

## release: optimised build (target/release/)
release:
	$(CARGO) build --workspace --release

## demo: run examples/hello through the real pool and a sandbox child
demo: build
	$(INVOKER) run examples/hello --event '$(DEMO_EVENT)'

## test: every test of the workspace, through the real binaries, plus the escape suite: the
## test-only child (--features escape-tests) in its own target dir, so it never replaces the
## normal debug binary; its path reaches tests/confinement.rs in CS_ESCAPE_CHILD_BIN
## The store and pipeline tests start their own redis-server (Debian package redis-server, a
## stand-in for KVRocks that speaks the same protocol); test-deps installs it when missing, and
## CS_REQUIRE_REDIS=1 makes those tests fail rather than skip if it is still not there.
test: build escape-child test-deps
	$(CARGO) test -p sandbox-child --features escape-tests --target-dir $(ESCAPE_TARGET_DIR)
	CS_REQUIRE_REDIS=1 CS_ESCAPE_CHILD_BIN=$(ESCAPE_CHILD) $(CARGO) test --workspace

## test-deps: the Debian packages the tests run for real (redis-server)
test-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  echo "make: installing redis-server (Debian package) for the store tests"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends redis-server; }

## escape-child: the test-only sandbox-child that attempts forbidden operations (never released)
escape-child:
	$(CARGO) build -p sandbox-child --features escape-tests --target-dir $(ESCAPE_TARGET_DIR)

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p sandbox-child --all-targets --features escape-tests --target-dir $(ESCAPE_TARGET_DIR) -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: pool, pipeline and end-to-end (codeQ emulator + redis + serve) benchmarks; figures
## go to target/bench/results.json (the last two need redis-server, which test-deps installs)
bench: test-deps
	$(CARGO) build --release -p sandbox-child
	$(CARGO) bench -p cs-invoker-pool --bench pool
	$(CARGO) bench -p cs-invoker-pool --bench pipeline
	$(CARGO) bench -p cs-invoker-pool --bench e2e

clean:
	$(CARGO) clean
