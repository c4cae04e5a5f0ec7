# cs-invoker-pool — developer entry points. See README.md.

CARGO ?= cargo
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
INVOKER := $(TARGET_DIR)/debug/cs-invoker-pool
DEMO_EVENT ?= {"name":"Sous"}

.PHONY: all build release demo test lint fmt bench clean

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

## test: every test of the workspace, through the real binaries
test: build
	$(CARGO) test --workspace

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: pool benchmark; writes target/bench/results.json and prints a table
bench:
	$(CARGO) bench -p cs-invoker-pool --bench pool

clean:
	$(CARGO) clean
