#!/usr/bin/env bash
# make vm-test: the packages and the confinement suites on a real kernel under a real systemd,
# in qemu (TCG), booted twice: with the unified cgroup v2 hierarchy, and with the legacy v1 one
# (systemd.unified_cgroup_hierarchy=0, as RHEL 8 boots). See packaging/vm/README.md.
#
# Everything the VM needs comes from Debian's packages, fetched by this script and cached under
# target/vm/ (qemu, a kernel, a debootstrapped rootfs packed as a cpio); only the payload (the
# packages, the driver, the test binaries) is rebuilt on each run.
#
# Environment:
#   VM_DEB=PATH VM_DEB_UPGRADE=PATH   the .deb to test and a newer revision of it (the upgrade
#                      test); `make vm-test` builds both
#   VM_RPM=PATH VM_RPM_UPGRADE=PATH   the same for the .rpm
#                      (without them the e2e part fails, unless VM_SKIP_E2E=1)
#   VM_BOOTS="v2:deb v1:rpm"   the boots, each CGROUP:PACKAGE: the hierarchy, and the package
#                      the e2e part installs, upgrades and removes in that boot
#   VM_SUITES_IN="v2"  the boots (by hierarchy) that run the test suites ("v2 v1": both)
#   VM_PARALLEL=1      the boots run side by side (0: one after the other)
#   VM_SKIP_E2E=1      run only the test suites in the guest
#   VM_SKIP_SUITES=1   run only the e2e part
#   VM_TESTS="confinement cgroup pool"   test targets run inside the guest
#   VM_TEST_THREADS=2  --test-threads of each test binary in the guest
#   VM_SKIP_TESTS="name ..."   tests passed to the test binaries as --skip (reported as INFO;
#                      default: none)
#   VM_TIMEOUT=900     seconds before qemu is killed (failure)
#   VM_MEM=3072 VM_SMP=2
#   VM_MIRROR=URL      Debian mirror (default: the first URIs of /etc/apt/sources.list*)
#   VM_SUITE=bookworm  Debian suite of the guest (default: the host's VERSION_CODENAME)
#   VM_NO_BUILD=1      use the binaries already built (no cargo)
#   VM_DROPIN=FILE     extra [Service] lines for the unit (a drop-in), to try a unit change
#                      without rebuilding the package; the e2e output says so (INFO unit-modified)
#   VM_PREPARE_ONLY=1  only fetch and cache qemu, the kernel and the rootfs
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/packaging/vm"
CARGO=${CARGO:-cargo}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
VM="$ROOT/target/vm"
DRIVER_TARGET="$ROOT/target/vm-build"
VM_TESTS=${VM_TESTS:-confinement cgroup pool}
VM_BOOTS=${VM_BOOTS:-v2:deb v1:rpm}
# The suites run in the v2 boot only: the host's `make test` runs them on v1 (without systemd),
# and the v1 boot's e2e part checks the packaged binaries' confinement and limits on v1 under
# systemd; both boots together stay under the 10 minutes this test is allowed.
VM_SUITES_IN=${VM_SUITES_IN-v2}
# Two pool tests give their invocation a 300 ms deadline and expect a child to have been spawned
# and killed within it; under TCG one cold activation takes 0.4–0.9 s, so the deadline passes while the
# pool is still waiting for the child ("... while waiting for a free sandbox child") and no kill
# is counted. A timing assumption of the tests, not a cgroup v2 matter: skipped here by default.
VM_SKIP_TESTS=${VM_SKIP_TESTS-}
VM_TIMEOUT=${VM_TIMEOUT:-900}
VM_MEM=${VM_MEM:-3072}
VM_SMP=${VM_SMP:-2}
# Bump when the rootfs recipe below changes: the cached base.cpio is rebuilt.
ROOTFS_RECIPE=5
# rpm: the .rpm is installed, upgraded and erased in the v1 boot.
INCLUDE=systemd-sysv,udev,dbus,redis-server,adduser,procps,rpm

log() { printf '[vm-test %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
T_START=$(date +%s)

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, device nodes in the rootfs cpio)"
mkdir -p "$VM"

# The guest runs binaries built here: its glibc must not be older than the host's. The guest is
# the host's own Debian release (bookworm here: glibc 2.36 on both sides).
. /etc/os-release
SUITE=${VM_SUITE:-${VERSION_CODENAME:-bookworm}}
[ "${ID:-}" = debian ] || log "warning: host is ${ID:-?}, not Debian: binaries built here may not run in a $SUITE guest"

mirror() {
  if [ -n "${VM_MIRROR:-}" ]; then echo "$VM_MIRROR"; return; fi
  local m
  m=$(grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$m" ] || m=$(grep -hE '^\s*deb\s' /etc/apt/sources.list 2>/dev/null \
        | awk '{print $2}' | grep -v security | head -1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

# --- host tools -----------------------------------------------------------------------------------
need_pkgs=()
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v objcopy >/dev/null || need_pkgs+=(binutils)
command -v python3 >/dev/null || need_pkgs+=(python3)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing host tools: ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# --- the in-guest driver, built while qemu, the kernel and the rootfs are fetched -----------------
# (its own workspace and target dir; cold, it is ~1.5 min of CPU that overlaps debootstrap's
# downloads). Waited for before the payload is packed.
DRIVER_BUILD_PID=
if [ -z "${VM_SKIP_E2E:-}" ] && [ -z "${VM_PREPARE_ONLY:-}" ] && \
   { [ -z "${VM_NO_BUILD:-}" ] || ! [ -x "$DRIVER_TARGET/debug/vm-driver" ]; }; then
  log "building the in-guest driver (packaging/vm/driver, target/vm-build) in the background"
  [ -f "$HERE/driver/Cargo.lock" ] || cp "$ROOT/Cargo.lock" "$HERE/driver/Cargo.lock"
  (cd "$HERE/driver" && CARGO_TARGET_DIR="$DRIVER_TARGET" $CARGO build -q) > "$VM/driver-build.log" 2>&1 &
  DRIVER_BUILD_PID=$!
  trap '[ -z "$DRIVER_BUILD_PID" ] || kill "$DRIVER_BUILD_PID" 2>/dev/null || true' EXIT
fi

# --- qemu (unpacked, not installed: the machine's newer qemu-utils stays) -------------------------
QEMU_DIR="$VM/qemu"
QEMU="$QEMU_DIR/usr/bin/qemu-system-x86_64"
qemu_run() { LD_LIBRARY_PATH="$QEMU_DIR/usr/lib/x86_64-linux-gnu:$QEMU_DIR/lib/x86_64-linux-gnu" "$QEMU" "$@"; }
if ! [ -f "$QEMU_DIR/.done" ] || ! qemu_run --version >/dev/null 2>&1; then
  log "fetching qemu-system-x86 and its libraries (apt-get download, unpacked into target/vm/qemu)"
  rm -rf "$QEMU_DIR" "$VM/qemu-debs" && mkdir -p "$QEMU_DIR" "$VM/qemu-debs"
  apt-get update -qq || true
  # qemu-system-x86, its firmware, and those of its libraries the host lacks (the host's own
  # libraries are used for the rest).
  avail=(qemu-system-x86 qemu-system-common qemu-system-data seabios ipxe-qemu)
  direct=$(apt-cache depends qemu-system-x86 | awk '/^ *Depends: lib/{print $2}' | sort -u)
  for p in $(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
               --no-replaces --no-enhances $direct \
             | awk '/^ *Depends: lib/{print $2} /^lib/{print $1}' | grep -v '^<' | sort -u); do
    dpkg -s "$p" >/dev/null 2>&1 || avail+=("$p")
  done
  (cd "$VM/qemu-debs" && apt-get download -qq "${avail[@]}" 2>&1 | grep -v unsandboxed || true)
  for d in "$VM"/qemu-debs/*.deb; do dpkg-deb -x "$d" "$QEMU_DIR"; done
  missing=$(LD_LIBRARY_PATH="$QEMU_DIR/usr/lib/x86_64-linux-gnu:$QEMU_DIR/lib/x86_64-linux-gnu" ldd "$QEMU" | grep 'not found' || true)
  [ -z "$missing" ] || die "qemu still lacks libraries: $missing"
  qemu_run --version | head -1 >&2
  touch "$QEMU_DIR/.done"
fi

# --- kernel: the package linux-image-amd64 depends on -------------------------------------------
KERNEL="$VM/vmlinuz"
if ! [ -s "$KERNEL" ]; then
  kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$kpkg" ] || die "cannot tell which kernel package linux-image-amd64 depends on"
  log "fetching the kernel ($kpkg)"
  rm -rf "$VM/kernel" && mkdir -p "$VM/kernel"
  (cd "$VM/kernel" && apt-get download -qq "$kpkg" 2>&1 | grep -v unsandboxed || true)
  dpkg-deb --fsys-tarfile "$VM"/kernel/*.deb | tar -x -C "$VM/kernel" --wildcards './boot/vmlinuz-*'
  cp "$VM"/kernel/boot/vmlinuz-* "$KERNEL.tmp" && mv "$KERNEL.tmp" "$KERNEL"
  echo "$kpkg" > "$VM/kernel.pkg"
  rm -rf "$VM/kernel"
fi

# --- base rootfs: debootstrap + systemd + redis-server, as a cpio ---------------------------------
BASE="$VM/base.cpio"
RECIPE="suite=$SUITE include=$INCLUDE recipe=$ROOTFS_RECIPE"
if ! [ -s "$BASE" ] || [ "$(cat "$VM/base.recipe" 2>/dev/null)" != "$RECIPE" ]; then
  M=$(mirror)
  if ! [ -f "$VM/rootfs/.debootstrap-done" ] || [ "$(cat "$VM/rootfs.recipe" 2>/dev/null)" != "$SUITE $INCLUDE" ]; then
    log "debootstrap $SUITE (minbase + $INCLUDE) from $M"
    rm -rf "$VM/rootfs" "$VM/rootfs.tmp"
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$VM/rootfs.tmp" "$M" > "$VM/debootstrap.log" 2>&1 \
      || { tail -20 "$VM/debootstrap.log" >&2; die "debootstrap failed (log: $VM/debootstrap.log)"; }
    touch "$VM/rootfs.tmp/.debootstrap-done"
    mv "$VM/rootfs.tmp" "$VM/rootfs"
    echo "$SUITE $INCLUDE" > "$VM/rootfs.recipe"
  fi
  log "customising the rootfs and packing base.cpio"
  R="$VM/rootfs"
  rm -f "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*_Packages 2>/dev/null || true
  rm -rf "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/locale/* "$R"/usr/share/info/*
  echo vm-test > "$R/etc/hostname"
  : > "$R/etc/fstab"
  # Empty machine-id: systemd makes a fresh one at boot (first boot, no presets re-run).
  : > "$R/etc/machine-id"
  # No logins, no units we do not use; the guest's redis runs on :6666, started by vm-test.sh.
  # Also masked, to boot faster under TCG (each took 2-4 s, `systemd-analyze blame`): the ext4
  # scrub reaper (no ext4 here), hugepages and the debug/tracing mounts.
  for u in redis-server.service getty@tty1.service serial-getty@ttyS0.service serial-getty@ttyS1.service \
           systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
           fstrim.timer systemd-tmpfiles-clean.timer e2scrub_reap.service dev-hugepages.mount \
           sys-kernel-debug.mount sys-kernel-tracing.mount dpkg-db-backup.timer; do
    ln -sf /dev/null "$R/etc/systemd/system/$u"
  done
  # The journal in memory only, kept small.
  mkdir -p "$R/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n' > "$R/etc/systemd/journald.conf.d/vm.conf"
  (cd "$R" && find . -path ./.debootstrap-done -prune -o -print0 | cpio --null -o -H newc --quiet -R 0:0) > "$BASE.tmp"
  mv "$BASE.tmp" "$BASE"
  echo "$RECIPE" > "$VM/base.recipe"
fi

if [ -n "${VM_PREPARE_ONLY:-}" ]; then log "prepared: $QEMU, $KERNEL, $BASE"; exit 0; fi

# --- builds -------------------------------------------------------------------------------------
TEST_BINS=()
ESCAPE_CHILD="$TARGET_DIR/escape/debug/sandbox-child"
if [ -z "${VM_SKIP_SUITES:-}" ] || [ -z "${VM_SKIP_E2E:-}" ]; then
  if [ -z "${VM_NO_BUILD:-}" ]; then
    log "building the workspace (debug), the escape child and the test binaries"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" $CARGO build --workspace -q)
    (cd "$ROOT" && $CARGO build -q -p sandbox-child --features escape-tests --target-dir "$TARGET_DIR/escape")
  fi
fi
if [ -z "${VM_SKIP_SUITES:-}" ]; then
  targs=()
  for t in $VM_TESTS; do targs+=(--test "$t"); done
  # Each test binary's path comes from cargo's own report (json lines, "executable").
  mapfile -t TEST_BINS < <(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" $CARGO test -q --no-run "${targs[@]}" \
      --message-format=json 2>/dev/null \
    | python3 -c 'import sys, json
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"] + "=" + m["executable"])')
  [ ${#TEST_BINS[@]} -gt 0 ] || die "cargo test --no-run gave no test binaries for: $VM_TESTS"
fi
if [ -z "${VM_SKIP_E2E:-}" ]; then
  if [ -n "${DRIVER_BUILD_PID:-}" ]; then
    wait "$DRIVER_BUILD_PID" || { cat "$VM/driver-build.log" >&2; die "building packaging/vm/driver failed"; }
    DRIVER_BUILD_PID=
    log "the in-guest driver is built"
  elif ! [ -x "$DRIVER_TARGET/debug/vm-driver" ]; then
    die "no $DRIVER_TARGET/debug/vm-driver (VM_NO_BUILD=1 needs an earlier build)"
  fi
  DEB=${VM_DEB:-}
  if [ -z "$DEB" ]; then
    DEB=$(ls -t "$TARGET_DIR"/debian/cs-invoker-pool_*.deb "$ROOT"/target/debian/cs-invoker-pool_*.deb 2>/dev/null | head -1 || true)
  fi
  RPM=${VM_RPM:-}
  if [ -z "$RPM" ]; then
    RPM=$(ls -t "$TARGET_DIR"/rpm/cs-invoker-pool-*.rpm "$ROOT"/target/rpm/cs-invoker-pool-*.rpm 2>/dev/null | head -1 || true)
  fi
  DEB_UPGRADE=${VM_DEB_UPGRADE:-}; RPM_UPGRADE=${VM_RPM_UPGRADE:-}
  for f in "$DEB" "$DEB_UPGRADE" "$RPM" "$RPM_UPGRADE"; do
    [ -n "$f" ] && [ -f "$f" ] || die "packages missing (deb '$DEB', upgrade '$DEB_UPGRADE', rpm '$RPM', upgrade '$RPM_UPGRADE'): run \`make vm-test\`, set VM_DEB, VM_DEB_UPGRADE, VM_RPM, VM_RPM_UPGRADE, or VM_SKIP_E2E=1 for the suites only"
  done
  log "packages: $DEB, $RPM; upgrades: $DEB_UPGRADE, $RPM_UPGRADE"
fi

# --- payload cpio -------------------------------------------------------------------------------
P="$VM/payload"
rm -rf "$P" && mkdir -p "$P/payload/tests" "$P/etc/systemd/system/multi-user.target.wants"
install -m 0755 "$HERE/guest/vm-test.sh" "$P/payload/vm-test.sh"
install -m 0644 "$HERE/guest/vm-test.service" "$P/etc/systemd/system/vm-test.service"
ln -s ../vm-test.service "$P/etc/systemd/system/multi-user.target.wants/vm-test.service"
# Binaries go in without debug info (the initramfs is RAM); the ones whose absolute paths are
# compiled into the tests (env!("CARGO_BIN_EXE_*")) go to the same absolute path in the guest.
put() { # put SRC DEST
  mkdir -p "$(dirname "$P$2")"
  objcopy --strip-debug "$1" "$P$2" 2>/dev/null || cp "$1" "$P$2"
  chmod 0755 "$P$2"
}
: > "$P/payload/tests.list"
if [ ${#TEST_BINS[@]} -gt 0 ]; then
  for tb in "${TEST_BINS[@]}"; do
    name=${tb%%=*}; exe=${tb#*=}
    if grep -qa "debug/cs-invoker-pool" "$exe" && ! grep -qa "$TARGET_DIR/debug/cs-invoker-pool" "$exe"; then
      log "warning: $exe was built with another target dir than $TARGET_DIR: the binaries it runs are not in the guest"
    fi
    put "$exe" "/payload/tests/$name"
    echo "$name" >> "$P/payload/tests.list"
  done
fi
if [ ${#TEST_BINS[@]} -gt 0 ] || [ -z "${VM_SKIP_E2E:-}" ]; then
  # Under /payload/abs, copied to their absolute paths by the guest once it is up: a path
  # under /tmp (a CI clone) would be hidden by the tmpfs systemd mounts on /tmp at boot.
  # The suites run against the packaged binaries: the .deb's cs-invoker-pool and sandbox-child
  # (the portable zig build) go where the tests exec theirs. The test binaries link the
  # supervisor library themselves; the child they spawn and the daemon they start are the
  # shipped ones, so a difference in the release build (seccomp, allocator) shows here.
  # Without a .deb (VM_SKIP_E2E=1) the debug binaries go there.
  bins_src="$TARGET_DIR/debug"
  if [ -n "${DEB:-}" ]; then
    rm -rf "$VM/pkgbins" && mkdir -p "$VM/pkgbins" && dpkg-deb -x "$DEB" "$VM/pkgbins"
    bins_src="$VM/pkgbins/usr/bin"
  fi
  put "$bins_src/cs-invoker-pool" "/payload/abs$TARGET_DIR/debug/cs-invoker-pool"
  put "$bins_src/sandbox-child" "/payload/abs$TARGET_DIR/debug/sandbox-child"
  put "$ESCAPE_CHILD" "/payload/abs$ESCAPE_CHILD"
fi
{
  echo "ROOT=$ROOT"
  echo "ESCAPE_CHILD=$ESCAPE_CHILD"
  echo "VM_TEST_THREADS=${VM_TEST_THREADS:-2}"
  echo "VM_SKIP_TESTS=\"${VM_SKIP_TESTS:-}\""
  if [ -z "${VM_SKIP_E2E:-}" ]; then
    echo "DEB=/payload/pkg/$(basename "$DEB")"
    echo "DEB_UPGRADE=/payload/pkg-upgrade/$(basename "$DEB_UPGRADE")"
    echo "RPM=/payload/pkg/$(basename "$RPM")"
    echo "RPM_UPGRADE=/payload/pkg-upgrade/$(basename "$RPM_UPGRADE")"
  fi
} > "$P/payload/env"
if [ -n "${VM_DROPIN:-}" ]; then
  cp "$VM_DROPIN" "$P/payload/dropin.conf"
  echo "VM_DROPIN_FILE=/payload/dropin.conf" >> "$P/payload/env"
fi
if [ -z "${VM_SKIP_E2E:-}" ]; then
  mkdir -p "$P/payload/pkg" "$P/payload/pkg-upgrade"
  cp "$DEB" "$RPM" "$P/payload/pkg/"
  cp "$DEB_UPGRADE" "$RPM_UPGRADE" "$P/payload/pkg-upgrade/"
  put "$DRIVER_TARGET/debug/vm-driver" /payload/vm-driver
fi
(cd "$P" && find . -mindepth 1 -print0 | cpio --null -o -H newc --quiet -R 0:0) > "$VM/payload.cpio"
cat "$BASE" "$VM/payload.cpio" > "$VM/boot.cpio"
log "initramfs: base $(du -h "$BASE" | cut -f1) + payload $(du -h "$VM/payload.cpio" | cut -f1)"

T_BOOTS=$(date +%s)
# --- boot, once per VM_BOOTS entry ---------------------------------------------------------------
# Each boot: its own console and results files; the hierarchy on the kernel command line
# (v1: systemd.unified_cgroup_hierarchy=0 plus systemd.legacy_systemd_cgroup_controller=1,
# because Debian's systemd, built for the unified hierarchy, would otherwise mount the hybrid
# layout with a v2 tree beside the v1 ones; RHEL 8's is built legacy and mounts none) and what
# the guest is to do (cs_vm_cgroup, cs_vm_package, cs_vm_suites; guest/vm-test.sh).
boot() { # boot CGROUP PACKAGE -> qemu's exit status
  local cg=$1 pkg=$2 suites=0 hier
  case " $VM_SUITES_IN " in *" $cg "*) suites=1 ;; esac
  case $cg in
    v2) hier="systemd.unified_cgroup_hierarchy=1" ;;
    v1) hier="systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1" ;;
    *) die "VM_BOOTS: cgroup '$cg' is neither v2 nor v1" ;;
  esac
  local results="$VM/results-$cg.log" console="$VM/console-$cg.log"
  : > "$results"; : > "$console"
  log "boot $cg ($pkg; suites: $suites): TCG, ${VM_SMP} vCPU, ${VM_MEM} MiB; console: $console; timeout ${VM_TIMEOUT}s"
  set +e
  timeout --kill-after=10 "$VM_TIMEOUT" env \
    LD_LIBRARY_PATH="$QEMU_DIR/usr/lib/x86_64-linux-gnu:$QEMU_DIR/lib/x86_64-linux-gnu" \
    "$QEMU" -L "$QEMU_DIR/usr/share/qemu" -L "$QEMU_DIR/usr/share/seabios" \
    -accel tcg,thread=multi -cpu max -smp "$VM_SMP" -m "$VM_MEM" \
    -display none -monitor none -no-reboot -nic none \
    -serial "file:$console" -serial "file:$results" \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -kernel "$KERNEL" -initrd "$VM/boot.cpio" \
    -append "console=ttyS0 rdinit=/lib/systemd/systemd $hier cs_vm_cgroup=$cg cs_vm_package=$pkg cs_vm_suites=$suites panic=-1 loglevel=4 systemd.show_status=0 random.trust_cpu=on"
  local rc=$?
  set -e
  return $rc
}

# The boots run at the same time (VM_PARALLEL=1, the default) or one after the other. Much of a
# boot is single-threaded guest work (dpkg's perl helpers, systemd, one activation at a time),
# which keeps one TCG thread busy and leaves the other host CPU idle; two guests side by side
# use both. Each guest still has its 2 vCPUs and its own memory.
VM_PARALLEL=${VM_PARALLEL:-1}
pids=()
for b in $VM_BOOTS; do
  cg=${b%%:*}; pkg=${b#*:}
  [ "$pkg" = deb ] || [ "$pkg" = rpm ] || die "VM_BOOTS: package '$pkg' in '$b' is neither deb nor rpm"
  (
    t0=$(date +%s); rc=0
    boot "$cg" "$pkg" || rc=$?
    echo "$rc $(( $(date +%s) - t0 ))" > "$VM/boot-$cg.status"
  ) &
  pids+=($!)
  [ "$VM_PARALLEL" = 1 ] || wait "${pids[-1]}"
done
wait "${pids[@]}" || true

summary=()
overall=0
for b in $VM_BOOTS; do
  cg=${b%%:*}; pkg=${b#*:}
  read -r rc secs < "$VM/boot-$cg.status" || { rc=1; secs=0; }
  RESULTS="$VM/results-$cg.log"; CONSOLE="$VM/console-$cg.log"
  echo "----- results of the $cg boot ($pkg; guest, ttyS1) -----"
  tr -d '\r' < "$RESULTS"
  echo "----------------------------------"
  case $rc in
    65) verdict=PASS ;;
    67) verdict="FAIL (the guest reported failures)" ;;
    124|137) verdict="FAIL (qemu killed after ${VM_TIMEOUT}s; last console lines below)"; tail -30 "$CONSOLE" ;;
    *) verdict="FAIL (qemu exited $rc; last console lines below)"; tail -30 "$CONSOLE" ;;
  esac
  npass=$(grep -c '^PASS' "$RESULTS" || true); nfail=$(grep -c '^FAIL' "$RESULTS" || true)
  e2e=$(grep -o 'e2e/summary: .*' "$RESULTS" | head -1 || true)
  summary+=("$cg boot ($pkg): $verdict — $npass passed, $nfail failed (${e2e:-no e2e summary}); VM $secs s")
  if [ "$rc" -ne 65 ] || [ "$nfail" -ne 0 ]; then overall=1; fi
done
T_END=$(date +%s)
for line in "${summary[@]}"; do echo "vm-test: $line"; done
echo "vm-test: $([ "$overall" -eq 0 ] && echo PASS || echo FAIL); boots $((T_END - T_BOOTS)) s ($([ "$VM_PARALLEL" = 1 ] && echo "side by side" || echo "one after the other")), total $((T_END - T_START)) s"
exit "$overall"
