# cs-invoker-pool — developer entry points. See README.md.

CARGO ?= cargo
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
INVOKER := $(TARGET_DIR)/debug/cs-invoker-pool
ESCAPE_TARGET_DIR ?= $(TARGET_DIR)/escape
ESCAPE_CHILD := $(abspath $(ESCAPE_TARGET_DIR))/debug/sandbox-child
DEMO_EVENT ?= {"name":"Sous"}

.PHONY: all build build-deps release demo test test-deps escape-child lint fmt bench bench-peers clean

all: build

## build: debug build of the supervisor and sandbox-child (what demo and test use)
build: build-deps
	$(CARGO) build --workspace

## build-deps: a C compiler and make (QuickJS is built from C), installed when missing
build-deps:
	@command -v cc >/dev/null 2>&1 || { \
	  SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  echo "make: installing build-essential (Debian package) for the QuickJS C build"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends build-essential pkg-config; }

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
	@$(MAKE) --no-print-directory apt-tools APT_TOOLS="redis-server"

## escape-child: the test-only sandbox-child that attempts forbidden operations (never released)
escape-child:
	$(CARGO) build -p sandbox-child --features escape-tests --target-dir $(ESCAPE_TARGET_DIR)

## lint: formatting and clippy, warnings are errors (the root workspace and fuzz/)
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --manifest-path fuzz/Cargo.toml --target-dir $(TARGET_DIR) --all-targets -- -D warnings
	$(CARGO) clippy -p sandbox-child --all-targets --features escape-tests --target-dir $(ESCAPE_TARGET_DIR) -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: pool, pipeline and end-to-end (codeQ emulator + redis + serve) benchmarks; figures
## go to target/bench/results.json (the last two need redis-server, which test-deps installs)
## The peers the pool bench compares against (benches/peers/: isolated-vm on Node 24, deno),
## exact versions installed once under target/bench/peers by npm, never by `make test`.
PEERS_DIR ?= $(TARGET_DIR)/bench/peers
bench: test-deps bench-peers
	$(CARGO) build --release -p sandbox-child
	CS_BENCH_PEERS_DIR=$(abspath $(PEERS_DIR)) $(CARGO) bench -p cs-invoker-pool --bench pool
	$(CARGO) bench -p cs-invoker-pool --bench pipeline
	$(CARGO) bench -p cs-invoker-pool --bench e2e
	$(CARGO) bench -p cs-invoker-pool --bench timeouts

## bench-peers: the peers' install (skipped, with a note, when npm or the registry is missing)
bench-peers:
	@benches/peers/install.sh $(abspath $(PEERS_DIR))

clean:
	$(CARGO) clean

# ---------------------------------------------------------------------------------------------
# Fuzzing (fuzz/README.md): cargo-fuzz targets for the frame decoder (both directions), the
# bundle tar parser, the manifest, the cs.invoke envelope and request, and the serve config.

.PHONY: fuzz fuzz-ci fuzz-deps fuzz-seeds

# cargo-fuzz, pinned: the flags it passes to rustc are what fuzz/README.md describes.
CARGO_FUZZ_VERSION ?= 0.13.2
## FUZZ_SECONDS: how long `make fuzz` runs each target; FUZZ_CI_SECONDS: the same for CI
FUZZ_SECONDS ?= 60
FUZZ_CI_SECONDS ?= 15
FUZZ_TARGET_DIR ?= $(TARGET_DIR)/fuzz
## FUZZ_SANITIZER: address (cargo-fuzz's default) or none (coverage only, faster)
FUZZ_SANITIZER ?= address
FUZZ_ENV = CARGO=$(CARGO) FUZZ_TARGET_DIR=$(FUZZ_TARGET_DIR) FUZZ_SANITIZER=$(FUZZ_SANITIZER)

## fuzz-deps: cargo-fuzz (cargo install --locked, only when missing) and a C++ compiler (libFuzzer)
fuzz-deps: build-deps
	@$(CARGO) fuzz --version >/dev/null 2>&1 || \
	  $(CARGO) install --locked cargo-fuzz --version '$(CARGO_FUZZ_VERSION)'
	@$(MAKE) --no-print-directory apt-tools APT_TOOLS="g++"

## fuzz: every fuzz target for FUZZ_SECONDS each (default 60); prints execs and execs/s per
## target; a crash's input lands in fuzz/artifacts/<target>/ and fails the run
fuzz: fuzz-deps
	$(FUZZ_ENV) fuzz/run.sh $(FUZZ_SECONDS)

## fuzz-ci: the same, FUZZ_CI_SECONDS (default 15) per target (what .ci/run runs)
fuzz-ci: fuzz-deps
	$(FUZZ_ENV) fuzz/run.sh $(FUZZ_CI_SECONDS)

## fuzz-seeds: rewrites the committed seed corpora fuzz/corpus/<target>/ from the real inputs
## (fuzz/examples/seeds.rs)
fuzz-seeds:
	$(CARGO) run --manifest-path fuzz/Cargo.toml --target-dir $(TARGET_DIR) --example seeds

# ---------------------------------------------------------------------------------------------
# Packaging (packaging/README.md). The packages hold the two release binaries, stripped by the
# release profile (strip = true), the systemd unit, the default configuration and the docs;
# never codeq-emulator (a test-only workspace member), so every build here names its packages.

.PHONY: bins deb rpm packages package-deps package-deps-deb package-deps-rpm package-check \
        install uninstall

RELEASE_DIR := $(TARGET_DIR)/release
DEB_DIR := $(TARGET_DIR)/debian
RPM_DIR := $(TARGET_DIR)/generate-rpm
# The packaging tools, pinned to the minor versions the metadata in Cargo.toml was written for.
CARGO_DEB_VERSION ?= ~3.8
CARGO_GENERATE_RPM_VERSION ?= ~0.21

## bins: the release binaries the packages and `make install` ship (cs-invoker-pool and
## sandbox-child only)
bins:
	$(CARGO) build --release -p cs-invoker-pool -p sandbox-child --bins

## package-deps: the packaging tools, each installed only when missing: cargo-deb and
## cargo-generate-rpm (cargo install --locked), lintian, file and rpm (Debian packages)
package-deps: package-deps-deb package-deps-rpm

package-deps-deb:
	@$(CARGO) deb --version >/dev/null 2>&1 || \
	  $(CARGO) install --locked cargo-deb --version '$(CARGO_DEB_VERSION)'
	@$(MAKE) --no-print-directory apt-tools APT_TOOLS="lintian file"

package-deps-rpm:
	@$(CARGO) generate-rpm --version >/dev/null 2>&1 || \
	  $(CARGO) install --locked cargo-generate-rpm --version '$(CARGO_GENERATE_RPM_VERSION)'
	@$(MAKE) --no-print-directory apt-tools APT_TOOLS="rpm file"

# Installs the Debian packages named in APT_TOOLS whose command is missing (the package and the
# command have the same name for each of them).
.PHONY: apt-tools
apt-tools:
	@missing=; for t in $(APT_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  echo "make: installing$$missing (Debian packages)"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## deb: target/debian/cs-invoker-pool_<version>-1_<arch>.deb (metadata: [package.metadata.deb])
## cargo-deb is told --no-build: left to itself it would run its own `cargo build --release`
deb: package-deps-deb bins
	$(CARGO) deb -p cs-invoker-pool --no-build

## rpm: target/generate-rpm/cs-invoker-pool-<version>-1.<arch>.rpm
## (metadata: [package.metadata.generate-rpm]; cargo-generate-rpm never builds)
rpm: package-deps-rpm bins
	$(CARGO) generate-rpm --target-dir $(TARGET_DIR)

packages: deb rpm

## package-check: assert the contents of the built .deb and .rpm (packaging/check-packages.sh)
package-check:
	packaging/check-packages.sh $(wildcard $(DEB_DIR)/cs-invoker-pool_*.deb) \
	  $(wildcard $(RPM_DIR)/cs-invoker-pool-*.rpm)

# `make install`: a plain install without a package manager, for hosts where neither package
# fits. It never compiles (so `sudo make install` needs no toolchain for root): `make bins`
# first, as yourself. DESTDIR stages the files elsewhere; the user and systemd are only touched
# when DESTDIR is empty.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
# systemd reads units from /usr/local/lib/systemd/system as well as /usr/lib/systemd/system.
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/cs-invoker-pool
# Not under PREFIX: /etc/cs-invoker-pool/config.yaml is the path `serve` defaults to.
CONFDIR ?= /etc/cs-invoker-pool

## install: binaries to $(BINDIR), the unit (its paths rewritten to BINDIR and DOCDIR) to $(UNITDIR), the
## configuration to $(CONFDIR) only when absent; DESTDIR honoured
install:
	@for b in cs-invoker-pool sandbox-child; do \
	  test -x $(RELEASE_DIR)/$$b || { echo "make install: $(RELEASE_DIR)/$$b is missing; run 'make bins' first" >&2; exit 1; }; \
	done
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(CONFDIR)
	install -m 0755 $(RELEASE_DIR)/cs-invoker-pool $(RELEASE_DIR)/sandbox-child $(DESTDIR)$(BINDIR)/
	sed 's|/usr/bin/cs-invoker-pool|$(BINDIR)/cs-invoker-pool|; s|/usr/bin/sandbox-child|$(BINDIR)/sandbox-child|; s|/usr/share/doc/cs-invoker-pool|$(DOCDIR)|' \
	  packaging/cs-invoker-pool.service > $(DESTDIR)$(UNITDIR)/cs-invoker-pool.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/cs-invoker-pool.service
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 packaging/README.md $(DESTDIR)$(DOCDIR)/packaging.md
	@# An existing configuration is the operator's: never overwritten.
	test -e $(DESTDIR)$(CONFDIR)/config.yaml || install -m 0640 packaging/config.yaml $(DESTDIR)$(CONFDIR)/config.yaml
	test -e $(DESTDIR)$(CONFDIR)/environment || install -m 0600 packaging/environment $(DESTDIR)$(CONFDIR)/environment
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ]; then \
	  if ! getent passwd cs-sandbox >/dev/null; then \
	    if getent group cs-sandbox >/dev/null; then g="--gid cs-sandbox"; else g="--user-group"; fi; \
	    echo "useradd --system $$g ... cs-sandbox"; \
	    useradd --system $$g --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
	      --comment "cs-invoker-pool sandbox children" cs-sandbox; \
	  fi; \
	  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	  echo "installed; edit $(CONFDIR)/config.yaml, then: systemctl enable --now cs-invoker-pool"; \
	fi

## uninstall: removes what install put in place, except the configuration (yours) and the
## cs-sandbox user; stop the service first (systemctl disable --now cs-invoker-pool)
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cs-invoker-pool $(DESTDIR)$(BINDIR)/sandbox-child
	rm -f $(DESTDIR)$(UNITDIR)/cs-invoker-pool.service
	rm -f $(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(DOCDIR)/packaging.md
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ] && [ "$$(id -u)" -eq 0 ]; then systemctl daemon-reload; fi
	@echo "kept $(CONFDIR) and the cs-sandbox user; remove them by hand if you want them gone"

## vm-test: the .deb end to end and the confinement suite on a real cgroup v2 kernel under a real
## systemd, in qemu (TCG); qemu, the kernel and a bookworm rootfs come from Debian's packages and
## are cached in target/vm (packaging/vm/README.md). Needs root. VM_DEB=path tests another .deb.
.PHONY: vm-test
vm-test: deb
	@SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO="sudo -E"; \
	deb=$${VM_DEB:-$$(ls -t $(DEB_DIR)/cs-invoker-pool_*.deb | head -1)}; \
	VM_DEB=$$deb CARGO_TARGET_DIR=$(TARGET_DIR) CARGO=$(CARGO) $$SUDO packaging/vm/run.sh
