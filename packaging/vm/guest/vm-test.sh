#!/bin/bash
# packaging/vm/guest/vm-test.sh — the guest side of `make vm-test` (started by vm-test.service).
# Everything it prints goes to the second serial port (/dev/ttyS1), which run.sh reads back from
# a file: PASS/FAIL/INFO lines, the test binaries' own output, and the e2e driver's lines. It
# ends the VM through isa-debug-exit: 32 (qemu exits 65) when nothing failed, else 33 (67).
#
# run.sh boots the same payload more than once; the kernel command line says which boot this is:
#   cs_vm_cgroup=v2|v1     the hierarchy systemd was asked for (systemd.unified_cgroup_hierarchy=)
#   cs_vm_package=deb|rpm  the package the e2e part installs, upgrades and removes
set -u
. /payload/env
OUT=/dev/ttyS1
stty -F "$OUT" raw -echo 2>/dev/null || true
exec >"$OUT" 2>&1

fails=0
pass() { echo "PASS $1: $2"; }
fail() { echo "FAIL $1: $2"; fails=$((fails + 1)); }
info() { echo "INFO $1: $2"; }
now() { date +%s.%N | cut -c1-14; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b - a}'; }

finish() {
  echo "VMTEST END fails=$fails"
  sync
  local code='\x20'   # 32 → qemu exits 65
  [ "$fails" -eq 0 ] || code='\x21'   # 33 → 67
  printf "$code" | dd of=/dev/port bs=1 seek=244 count=1 conv=notrunc 2>/dev/null
  sleep 10
  poweroff -f
}
# However this script ends, the VM ends with it (an unexpected end counts as a failure).
done_ok=
trap '[ -n "$done_ok" ] || fail guest "vm-test.sh ended early"; finish' EXIT

# The binaries whose absolute host paths are compiled into the tests go back to those paths now
# that the system is up (run.sh explains why they travel under /payload/abs).
if [ -d /payload/abs ]; then
  (cd /payload/abs && find . -type f) | while read -r f; do
    dest=/${f#./}
    mkdir -p "$(dirname "$dest")" && cp -p "/payload/abs/${f#./}" "$dest"
  done
fi

echo "VMTEST BEGIN"
info kernel "$(uname -r) $(uname -v)"
info systemd "$(systemctl --version | head -1)"
info boot "vm-test.service started $(cut -d' ' -f1 /proc/uptime) s after the kernel; slowest units: $(systemd-analyze blame --no-pager 2>/dev/null | head -n 4 | awk '{printf "%s %s, ", $2, $1}')"
info cpus "$(nproc) vCPU, $(awk '/MemTotal/{print $2 / 1024 " MiB"}' /proc/meminfo)"
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }
CGROUP=$(arg cs_vm_cgroup); CGROUP=${CGROUP:-v2}
PACKAGE=$(arg cs_vm_package); PACKAGE=${PACKAGE:-deb}
info boot-kind "cgroup $CGROUP, package $PACKAGE ($(tr ' ' '\n' < /proc/cmdline | grep cgroup | tr '\n' ' '))"
fstype() { awk -v at="$1" '$2 == at {print $3}' /proc/mounts; }
if [ "$CGROUP" = v2 ]; then
  ctl=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null || echo none)
  mnt=$(fstype /sys/fs/cgroup)
  if [ "$mnt" = cgroup2 ] && [[ " $ctl " == *" memory "* ]] && [[ " $ctl " == *" pids "* ]]; then
    pass cgroup-v2 "/sys/fs/cgroup is $mnt, controllers: $ctl"
  else
    fail cgroup-v2 "/sys/fs/cgroup is ${mnt:-unmounted}, controllers: $ctl"
    done_ok=1; exit
  fi
else
  # Legacy, as RHEL 8 boots: a tmpfs with one v1 tree per controller and no v2 tree at all.
  top=$(fstype /sys/fs/cgroup); mem=$(fstype /sys/fs/cgroup/memory); pids=$(fstype /sys/fs/cgroup/pids)
  unified=$(fstype /sys/fs/cgroup/unified)
  if [ "$top" = tmpfs ] && [ "$mem" = cgroup ] && [ "$pids" = cgroup ] && [ -z "$unified" ]; then
    pass cgroup-v1 "/sys/fs/cgroup is $top; memory and pids are v1 trees; no unified (v2) tree"
  else
    fail cgroup-v1 "/sys/fs/cgroup is ${top:-unmounted}; memory: ${mem:-none}, pids: ${pids:-none}, unified: ${unified:-none}"
    done_ok=1; exit
  fi
fi

# redis-server (KVRocks stand-in) on :6666, the shipped config's port.
redis-server --port 6666 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --logfile /tmp/redis.log
for _ in $(seq 100); do [ "$(redis-cli -p 6666 ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
if [ "$(redis-cli -p 6666 ping 2>/dev/null)" = PONG ]; then pass redis "redis-server $(redis-server --version | awk '{print $3}') on 127.0.0.1:6666"
else fail redis "redis-server did not answer on :6666"; tail -5 /tmp/redis.log; fi

# How long one cold activation takes here (TCG is ~10x slower than the host): the packaged
# supervisor (run.sh put the .deb's binaries at the paths the tests exec), one child spawned,
# confined and run, under systemd-run -p Delegate=yes.
echo 'export default () => ({ statusCode: 200, body: "ok" })' > /tmp/ok.js
for i in 1; do
  t0=$(now)
  out=$(systemd-run --wait --pipe --collect --quiet -p Delegate=yes -E CS_REQUIRE_SANDBOX=1 \
        "$ROOT/target/debug/cs-invoker-pool" run /tmp/ok.js 2>&1 </dev/null)
  rc=$?
  if [ $rc -eq 0 ]; then info "cold-run-$i" "cs-invoker-pool run (packaged, confined, $CGROUP): $(secs "$t0") s wall, $(echo "$out" | grep -o '"duration_ms":[0-9]*' | head -1)"
  else fail "cold-run-$i" "cs-invoker-pool run exited $rc: $out"; fi
done

# The project's test binaries, each as a transient service with Delegate=yes, alone in its
# cgroup (the v2 backend moves the process into a leaf, which it refuses to do when other
# processes share the cgroup, as this script's would).
skips=
for t in ${VM_SKIP_TESTS:-}; do
  skips="$skips --skip $t"
  info "skipped-test" "$t (VM_SKIP_TESTS)"
done
SUITES=$(arg cs_vm_suites); SUITES=${SUITES:-1}
[ "$SUITES" = 1 ] || info suites "not in this boot (run.sh VM_SUITES_IN)"
[ "$SUITES" = 1 ] && for name in $(cat /payload/tests.list); do
  t0=$(now)
  echo "===== suite $name (CS_REQUIRE_SANDBOX=1, cgroup $CGROUP, systemd-run -p Delegate=yes) ====="
  systemd-run --wait --pipe --collect --quiet --unit "vm-suite-$name" \
    -p Delegate=yes -p RuntimeMaxSec="${VM_SUITE_TIMEOUT:-600}" -p WorkingDirectory="$ROOT" \
    -E CS_REQUIRE_SANDBOX=1 -E CS_ESCAPE_CHILD_BIN="$ESCAPE_CHILD" -E RUST_BACKTRACE=1 \
    -E HOME=/root -E PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    "/payload/tests/$name" --color never --test-threads="${VM_TEST_THREADS:-2}" $skips </dev/null
  rc=$?
  if [ $rc -eq 0 ]; then pass "suite/$name" "passed on cgroup $CGROUP in $(secs "$t0") s"
  else fail "suite/$name" "exit $rc after $(secs "$t0") s"; fi
  left=$(find /sys/fs/cgroup -type d -name 'cs-*' 2>/dev/null | head -5)
  if [ -z "$left" ]; then pass "suite/$name/no-cgroup-left" "no cs-* cgroup anywhere after the suite"
  else fail "suite/$name/no-cgroup-left" "$left"; fi
done

# The package end to end, under the real systemd.
if [ -n "${DEB:-}" ]; then
  t0=$(now)
  echo "===== e2e: the .$PACKAGE installed, upgraded while tasks flow, removed; codeQ emulator, redis; cgroup $CGROUP ====="
  # The packaged unit has PrivateTmp=yes: a child under /tmp (a CI clone) would be invisible to
  # the daemon, so the escape child it is pointed at lives outside /tmp.
  SERVICE_ESCAPE=/opt/vm-test/escape/sandbox-child
  mkdir -p "$(dirname "$SERVICE_ESCAPE")" && cp -p "$ESCAPE_CHILD" "$SERVICE_ESCAPE"
  if [ "$PACKAGE" = rpm ]; then
    # RHEL and Fedora ship a preset policy that leaves new services disabled ("disable *");
    # Debian ships none, so the guest gets RHEL's for the rpm's %post to apply.
    mkdir -p /etc/systemd/system-preset
    echo 'disable *' > /etc/systemd/system-preset/99-default-disable.preset
  fi
  VM_DROPIN_FILE=${VM_DROPIN_FILE:-} timeout 900 /payload/vm-driver e2e --package "$PACKAGE" --cgroup "$CGROUP" \
    --deb "$DEB" --deb-upgrade "$DEB_UPGRADE" --rpm "$RPM" --rpm-upgrade "$RPM_UPGRADE" \
    --escape-child "$SERVICE_ESCAPE"
  rc=$?
  if [ $rc -eq 0 ]; then pass e2e "all checks passed in $(secs "$t0") s"
  else fail e2e "vm-driver exited $rc after $(secs "$t0") s"; fi
fi

failed_units=$(systemctl list-units --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')
info failed-units "${failed_units:-none}"
done_ok=1
