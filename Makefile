# cs-invoker-pool — developer entry points. See README.md.

CARGO ?= cargo
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
INVOKER := $(TARGET_DIR)/debug/cs-invoker-pool
ESCAPE_TARGET_DIR ?= $(TARGET_DIR)/escape
ESCAPE_CHILD := $(abspath $(ESCAPE_TARGET_DIR))/debug/sandbox-child
DEMO_EVENT ?= {"name":"Sous"}

.PHONY: all build build-deps release demo test test-deps escape-child lint fmt bench bench-peers clean intl-data

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

## lint: formatting and clippy, warnings are errors (the root workspace and fuzz/; rustfmt
## and clippy added with rustup when this toolchain lacks them)
lint: lint-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --manifest-path fuzz/Cargo.toml --target-dir $(TARGET_DIR) --all-targets -- -D warnings
	$(CARGO) clippy -p sandbox-child --all-targets --features escape-tests --target-dir $(ESCAPE_TARGET_DIR) -- -D warnings

fmt: lint-deps
	$(CARGO) fmt --all

.PHONY: lint-deps
lint-deps:
	@$(CARGO) fmt --version >/dev/null 2>&1 && $(CARGO) clippy --version >/dev/null 2>&1 || \
	  rustup component add rustfmt clippy

## bench: pool, pipeline and end-to-end (codeQ emulator + redis + serve) benchmarks; figures
## go to target/bench/results.json (the last two need redis-server, which test-deps installs)
## The peers the pool bench compares against (benches/peers/: isolated-vm on Node 24, deno),
## exact versions installed once under target/bench/peers by npm, never by `make test`.
PEERS_DIR ?= $(TARGET_DIR)/bench/peers
## The compiled-module cache bench's bundle (benches/mathjs/: mathjs bundled by esbuild, both
## pinned), installed and bundled once under target/bench/mathjs, never by `make test`.
MATHJS_DIR ?= $(TARGET_DIR)/bench/mathjs
bench: test-deps bench-peers
	$(CARGO) build --release -p sandbox-child
	CS_BENCH_PEERS_DIR=$(abspath $(PEERS_DIR)) $(CARGO) bench -p cs-invoker-pool --bench pool
	$(CARGO) bench -p cs-invoker-pool --bench pipeline
	$(CARGO) bench -p cs-invoker-pool --bench e2e
	$(CARGO) bench -p cs-invoker-pool --bench timeouts
	@benches/mathjs/install.sh $(abspath $(MATHJS_DIR))
	CS_BENCH_MATHJS_DIR=$(abspath $(MATHJS_DIR)) $(CARGO) bench -p cs-invoker-pool --bench bytecode

## bench-peers: node and npm (Debian packages, when missing: the pool bench's fresh-node
## baseline and the peers' installer need them), then the peers' install (skipped, with a note,
## when the registry cannot be reached)
bench-peers:
	@$(MAKE) --no-print-directory apt-tools APT_TOOLS="node:nodejs npm:npm"
	@benches/peers/install.sh $(abspath $(PEERS_DIR))

clean:
	$(CARGO) clean

## intl-data: regenerate the Intl locale data compiled into sandbox-child
## (sandbox-child/src/engine/intl/data/) from ICU4X's compiled data and CLDR's JSON release
## (npm); needs the network, Node and a few minutes. Not part of build, test or CI: the
## generated files are committed (tools/intl-data/README.md).
INTL_DATA := sandbox-child/src/engine/intl/data
INTL_WORK := $(abspath $(TARGET_DIR))/intl-data
intl-data:
	tools/intl-data/fetch-cldr.sh $(INTL_WORK)/cldr
	node tools/intl-data/cldr.mjs $(INTL_WORK)/cldr tools/intl-data/locales.txt \
	  $(INTL_DATA)/cldr.rs $(INTL_WORK)/currencies.txt
	cd tools/intl-data && $(CARGO) run --release --target-dir $(INTL_WORK)/build -- \
	  locales.txt $(INTL_WORK)/currencies.txt $(abspath $(INTL_DATA))/icu.postcard

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
# Packaging (packaging/README.md). The packages hold the two release binaries, built portable
# (newest glibc symbol version GLIBC_MIN, stripped by the release profile), their man pages and
# shell completions, the systemd unit, the default configuration and the docs; never
# codeq-emulator (a test-only workspace member), so every build here names its packages.

.PHONY: bins pkg-docs deb rpm packages package-deps package-deps-build package-deps-deb \
        package-deps-rpm package-deps-check package-check install uninstall

# The release binaries link the oldest glibc the packages promise: cargo-zigbuild links them with
# zig against glibc GLIBC_MIN's symbol versions (x86_64-unknown-linux-gnu.2.28: RHEL/Rocky/Alma
# 8, Debian 10+, Ubuntu 18.10+), whatever the build machine's glibc is. Only the host's own Rust
# std is needed (the triple is the host's; the suffix only tells zig which glibc to link).
GLIBC_MIN ?= 2.28
RUST_TARGET ?= $(shell uname -m)-unknown-linux-gnu
RELEASE_DIR := $(TARGET_DIR)/$(RUST_TARGET)/release
DOCS_DIR := $(RELEASE_DIR)/docs
DEB_DIR := $(TARGET_DIR)/debian
RPM_DIR := $(TARGET_DIR)/rpm
# The packages' revision (Debian revision, rpm Release); `make vm-test` builds a second one to
# test upgrades.
PKG_REVISION ?= 1
PKG_VERSION = $(shell $(CARGO) pkgid -p cs-invoker-pool | sed 's/.*[#@]//')
# Build time and man page date: the newest packaging/deb/changelog entry, so that rebuilding
# the same tree gives the same files.
SOURCE_DATE_EPOCH ?= $(shell date -d "$$(sed -n 's/^ -- .*>  //p' packaging/deb/changelog | head -n 1)" +%s)
export SOURCE_DATE_EPOCH
# The packaging tools, pinned to the minor versions this Makefile and the metadata were written
# for. Zig comes from PyPI (`ziglang`), in a virtualenv of its own under target/tools.
CARGO_DEB_VERSION ?= ~3.8
CARGO_ZIGBUILD_VERSION ?= ~0.24
ZIG_VERSION ?= 0.15.2
ZIG_VENV := $(abspath $(TARGET_DIR))/tools/ziglang-$(ZIG_VERSION)
ZIGBUILD := CARGO_ZIGBUILD_PYTHON_PATH=$(ZIG_VENV)/bin/python3 $(CARGO) zigbuild

## bins: the release binaries the packages and `make install` ship (cs-invoker-pool and
## sandbox-child, plus cs-invoker-pool-docs, which pkg-docs runs and nothing ships), linked
## against glibc $(GLIBC_MIN) (target/<triple>/release)
bins: package-deps-build
	$(ZIGBUILD) --release -p cs-invoker-pool -p sandbox-child -p cs-invoker-pool-docs --bins --target $(RUST_TARGET).$(GLIBC_MIN)

## pkg-docs: man pages (gzip -9n) and bash/zsh/fish completions of both commands, generated from
## their clap definitions by cs-invoker-pool-docs (target/<triple>/release/docs)
pkg-docs: bins
	@rm -rf $(DOCS_DIR)
	$(RELEASE_DIR)/cs-invoker-pool-docs $(DOCS_DIR) --date $$(date -u -d @$(SOURCE_DATE_EPOCH) +%F) >/dev/null
	gzip -9n $(DOCS_DIR)/man/*.1

## package-deps: every tool the packaging targets use, each installed only when missing:
## cargo-zigbuild, cargo-deb (cargo install --locked), Zig (PyPI, a virtualenv in target/tools),
## and the Debian packages dpkg-dev, lintian, rpm, cpio, file, binutils, debootstrap
package-deps: package-deps-build package-deps-deb package-deps-rpm package-deps-check

package-deps-build:
	@$(CARGO) zigbuild --help >/dev/null 2>&1 || \
	  $(CARGO) install --locked cargo-zigbuild --version '$(CARGO_ZIGBUILD_VERSION)'
	@$(MAKE) --no-print-directory apt-tools APT_TOOLS="cc:build-essential python3"
	@if ! "$(ZIG_VENV)/bin/python3" -m ziglang version >/dev/null 2>&1; then \
	  python3 -c 'import ensurepip' 2>/dev/null || $(MAKE) --no-print-directory apt-tools APT_FORCE=1 APT_TOOLS="python3-venv"; \
	  echo "make: installing ziglang==$(ZIG_VERSION) (PyPI) into $(ZIG_VENV)"; \
	  rm -rf "$(ZIG_VENV)" && python3 -m venv "$(ZIG_VENV)" && \
	  "$(ZIG_VENV)/bin/pip" install --quiet --disable-pip-version-check 'ziglang==$(ZIG_VERSION)' && \
	  "$(ZIG_VENV)/bin/python3" -m ziglang version >/dev/null; \
	fi

package-deps-deb:
	@$(CARGO) deb --version >/dev/null 2>&1 || \
	  $(CARGO) install --locked cargo-deb --version '$(CARGO_DEB_VERSION)'
	@$(MAKE) --no-print-directory apt-tools APT_TOOLS="dpkg-shlibdeps:dpkg-dev gzip"

package-deps-rpm:
	@$(MAKE) --no-print-directory apt-tools APT_TOOLS="rpmbuild:rpm gzip"

package-deps-check:
	@$(MAKE) --no-print-directory apt-tools \
	  APT_TOOLS="lintian man:man-db rpm2cpio:rpm cpio file objdump:binutils debootstrap unshare:util-linux"

# Installs the Debian packages for the commands in APT_TOOLS that are missing. Each entry is
# COMMAND or COMMAND:PACKAGE (when the package has another name). APT_FORCE=1: the entries are
# packages, installed without looking for a command.
.PHONY: apt-tools
apt-tools:
	@missing=; for t in $(APT_TOOLS); do \
	  cmd=$${t%%:*}; pkg=$${t#*:}; \
	  if [ -n "$(APT_FORCE)" ] || ! command -v $$cmd >/dev/null 2>&1; then missing="$$missing $$pkg"; fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  echo "make: installing$$missing (Debian packages)"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## deb: target/debian/cs-invoker-pool_<version>-<PKG_REVISION>_<arch>.deb (metadata:
## [package.metadata.deb]); cargo-deb is told --no-build (left to itself it would run its own
## `cargo build --release`) and --target (it then takes the binaries from target/<triple>/release)
deb: package-deps-deb pkg-docs
	@mkdir -p $(DEB_DIR)
	$(CARGO) deb -p cs-invoker-pool --no-build --no-strip --target $(RUST_TARGET) \
	  --deb-revision $(PKG_REVISION) --output $(DEB_DIR)/

## rpm: target/rpm/cs-invoker-pool-<version>-<PKG_REVISION>.<arch>.rpm, with rpmbuild
## (packaging/rpm/cs-invoker-pool.spec; packaging/rpm/build-rpm.sh), which compiles nothing
rpm: package-deps-rpm pkg-docs
	packaging/rpm/build-rpm.sh $(RELEASE_DIR) $(DOCS_DIR) $(RPM_DIR) $(PKG_VERSION) $(PKG_REVISION)

packages: deb rpm

## package-check: the built .deb and .rpm (packaging/check-packages.sh): contents, modes,
## scripts, dependencies, the newest glibc symbol of each binary (<= GLIBC_MIN), lintian, and a
## run of examples/hello through the real sandbox in a Debian 11 (bullseye, glibc 2.31) chroot
## (root; the chroot is cached in target/chroot)
package-check: package-deps-check
	GLIBC_MIN=$(GLIBC_MIN) packaging/check-packages.sh \
	  $(firstword $(shell ls -t $(DEB_DIR)/cs-invoker-pool_*.deb 2>/dev/null)) \
	  $(firstword $(shell ls -t $(RPM_DIR)/cs-invoker-pool-*.rpm 2>/dev/null))

# `make install`: a plain install without a package manager, for hosts where neither package
# fits. It never compiles (so `sudo make install` needs no toolchain for root): `make pkg-docs`
# (the binaries, the man pages and the completions) first, as yourself. DESTDIR stages the files elsewhere; the user and systemd are only touched
# when DESTDIR is empty.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
# systemd reads units from /usr/local/lib/systemd/system as well as /usr/lib/systemd/system.
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/cs-invoker-pool
MANDIR ?= $(PREFIX)/share/man/man1
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
# Not under PREFIX: /etc/cs-invoker-pool/config.yaml is the path `serve` defaults to.
CONFDIR ?= /etc/cs-invoker-pool

## install: binaries to $(BINDIR), the unit (its paths rewritten to BINDIR and DOCDIR) to
## $(UNITDIR), man pages to $(MANDIR), bash/zsh/fish completions, the configuration to
## $(CONFDIR) only when absent; DESTDIR honoured
install:
	@for f in $(RELEASE_DIR)/cs-invoker-pool $(RELEASE_DIR)/sandbox-child $(DOCS_DIR)/man/cs-invoker-pool.1.gz; do \
	  test -f $$f || { echo "make install: $$f is missing; run 'make pkg-docs' first" >&2; exit 1; }; \
	done
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(CONFDIR) \
	  $(DESTDIR)$(MANDIR) $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0755 $(RELEASE_DIR)/cs-invoker-pool $(RELEASE_DIR)/sandbox-child $(DESTDIR)$(BINDIR)/
	install -m 0644 $(DOCS_DIR)/man/*.1.gz $(DESTDIR)$(MANDIR)/
	for c in cs-invoker-pool sandbox-child; do \
	  install -m 0644 $(DOCS_DIR)/completions/bash/$$c.bash $(DESTDIR)$(BASHCOMPDIR)/$$c; \
	  install -m 0644 $(DOCS_DIR)/completions/zsh/_$$c $(DESTDIR)$(ZSHCOMPDIR)/_$$c; \
	  install -m 0644 $(DOCS_DIR)/completions/fish/$$c.fish $(DESTDIR)$(FISHCOMPDIR)/$$c.fish; \
	done
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
	rm -f $(DESTDIR)$(MANDIR)/cs-invoker-pool*.1.gz $(DESTDIR)$(MANDIR)/sandbox-child*.1.gz
	for c in cs-invoker-pool sandbox-child; do \
	  rm -f $(DESTDIR)$(BASHCOMPDIR)/$$c $(DESTDIR)$(ZSHCOMPDIR)/_$$c $(DESTDIR)$(FISHCOMPDIR)/$$c.fish; \
	done
	rm -f $(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(DOCDIR)/packaging.md
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ] && [ "$$(id -u)" -eq 0 ]; then systemctl daemon-reload; fi
	@echo "kept $(CONFDIR) and the cs-sandbox user; remove them by hand if you want them gone"

## vm-test: the packages end to end and the confinement suites under a real systemd, in qemu
## (TCG), booted twice: cgroup v2 with the .deb, legacy cgroup v1 (as RHEL 8) with the .rpm; each
## boot installs its package, upgrades it to a newer revision (PKG_REVISION + 1, built here into
## target/vm/upgrade) while tasks flow, and removes it. qemu, the kernel and a bookworm rootfs
## come from Debian's packages and are cached in target/vm (packaging/vm/README.md). Needs
## root. VM_DEB=path / VM_RPM=path test other packages.
.PHONY: vm-test
VM_UPGRADE_DIR := $(TARGET_DIR)/vm/upgrade
# The newer revision first: cargo-deb deletes every other version's .deb from target/debian
# (whatever --output says), so the package under test is built last.
vm-test: bins
	@$(MAKE) --no-print-directory deb rpm PKG_REVISION=$$(( $(PKG_REVISION) + 1 )) \
	  DEB_DIR=$(VM_UPGRADE_DIR) RPM_DIR=$(VM_UPGRADE_DIR) >/dev/null
	@$(MAKE) --no-print-directory deb rpm >/dev/null
	@SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO="sudo -E"; \
	deb=$${VM_DEB:-$$(ls -t $(DEB_DIR)/cs-invoker-pool_*.deb | head -1)}; \
	rpm=$${VM_RPM:-$$(ls -t $(RPM_DIR)/cs-invoker-pool-*.rpm | head -1)}; \
	rev=$$(( $(PKG_REVISION) + 1 )); \
	VM_DEB=$$deb VM_RPM=$$rpm \
	VM_DEB_UPGRADE=$${VM_DEB_UPGRADE:-$$(ls $(VM_UPGRADE_DIR)/cs-invoker-pool_*-$${rev}_*.deb | head -1)} \
	VM_RPM_UPGRADE=$${VM_RPM_UPGRADE:-$$(ls $(VM_UPGRADE_DIR)/cs-invoker-pool-*-$${rev}.*.rpm | head -1)} \
	CARGO_TARGET_DIR=$(TARGET_DIR) CARGO=$(CARGO) $$SUDO packaging/vm/run.sh
