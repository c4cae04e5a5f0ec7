#!/bin/bash
# packaging/vm/guest/vm-test.sh — the guest side of `make vm-test` (started by vm-test.service).
# Everything it prints goes to the second serial port (/dev/ttyS1), which run.sh reads back from
# a file: PASS/FAIL/INFO lines, the test binaries' own output, and the e2e driver's lines. It
# ends the VM through isa-debug-exit: 32 (qemu exits 65) when nothing failed, else 33 (67).
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
info boot "vm-test.service started $(cut -d' ' -f1 /proc/uptime) s after the kernel"
info cpus "$(nproc) vCPU, $(awk '/MemTotal/{print $2 / 1024 " MiB"}' /proc/meminfo)"
ctl=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null || echo none)
mnt=$(awk '$2 == "/sys/fs/cgroup" {print $3}' /proc/mounts)
if [ "$mnt" = cgroup2 ] && [[ " $ctl " == *" memory "* ]] && [[ " $ctl " == *" pids "* ]]; then
  pass cgroup-v2 "/sys/fs/cgroup is $mnt, controllers: $ctl"
else
  fail cgroup-v2 "/sys/fs/cgroup is ${mnt:-unmounted}, controllers: $ctl"
  done_ok=1; exit
fi

# redis-server (KVRocks stand-in) on :6666, the shipped config's port.
redis-server --port 6666 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --logfile /tmp/redis.log
for _ in $(seq 100); do [ "$(redis-cli -p 6666 ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
if [ "$(redis-cli -p 6666 ping 2>/dev/null)" = PONG ]; then pass redis "redis-server $(redis-server --version | awk '{print $3}') on 127.0.0.1:6666"
else fail redis "redis-server did not answer on :6666"; tail -5 /tmp/redis.log; fi

# How long one cold activation takes here (TCG is ~10x slower than the host): the debug
# supervisor, one child spawned, confined and run, under systemd-run -p Delegate=yes.
echo 'export default () => ({ statusCode: 200, body: "ok" })' > /tmp/ok.js
for i in 1 2; do
  t0=$(now)
  out=$(systemd-run --wait --pipe --collect --quiet -p Delegate=yes -E CS_REQUIRE_SANDBOX=1 \
        "$ROOT/target/debug/cs-invoker-pool" run /tmp/ok.js 2>&1 </dev/null)
  rc=$?
  if [ $rc -eq 0 ]; then info "cold-run-$i" "cs-invoker-pool run (debug, confined, v2): $(secs "$t0") s wall, $(echo "$out" | grep -o '"duration_ms":[0-9]*' | head -1)"
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
for name in $(cat /payload/tests.list); do
  t0=$(now)
  echo "===== suite $name (CS_REQUIRE_SANDBOX=1, cgroup v2, systemd-run -p Delegate=yes) ====="
  systemd-run --wait --pipe --collect --quiet --unit "vm-suite-$name" \
    -p Delegate=yes -p RuntimeMaxSec="${VM_SUITE_TIMEOUT:-600}" -p WorkingDirectory="$ROOT" \
    -E CS_REQUIRE_SANDBOX=1 -E CS_ESCAPE_CHILD_BIN="$ESCAPE_CHILD" -E RUST_BACKTRACE=1 \
    -E HOME=/root -E PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    "/payload/tests/$name" --color never --test-threads="${VM_TEST_THREADS:-2}" $skips </dev/null
  rc=$?
  if [ $rc -eq 0 ]; then pass "suite/$name" "passed on cgroup v2 in $(secs "$t0") s"
  else fail "suite/$name" "exit $rc after $(secs "$t0") s"; fi
  left=$(find /sys/fs/cgroup -type d -name 'cs-*' 2>/dev/null | head -5)
  if [ -z "$left" ]; then pass "suite/$name/no-cgroup-left" "no cs-* cgroup anywhere after the suite"
  else fail "suite/$name/no-cgroup-left" "$left"; fi
done

# The package end to end, under the real systemd.
if [ -n "${DEB:-}" ]; then
  t0=$(now)
  echo "===== e2e: dpkg -i $DEB, the unit, codeQ emulator, redis ====="
  # The packaged unit has PrivateTmp=yes: a child under /tmp (a CI clone) would be invisible to
  # the daemon, so the escape child it is pointed at lives outside /tmp.
  SERVICE_ESCAPE=/opt/vm-test/escape/sandbox-child
  mkdir -p "$(dirname "$SERVICE_ESCAPE")" && cp -p "$ESCAPE_CHILD" "$SERVICE_ESCAPE"
  VM_DROPIN_FILE=${VM_DROPIN_FILE:-} timeout 900 /payload/vm-driver e2e --deb "$DEB" --escape-child "$SERVICE_ESCAPE"
  rc=$?
  if [ $rc -eq 0 ]; then pass e2e "all checks passed in $(secs "$t0") s"
  else fail e2e "vm-driver exited $rc after $(secs "$t0") s"; fi
fi

failed_units=$(systemctl list-units --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')
info failed-units "${failed_units:-none}"
done_ok=1
