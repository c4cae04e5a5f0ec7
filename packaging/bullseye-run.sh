#!/usr/bin/env bash
# The proof that the portable binaries run where an older glibc is: installs the .deb in a
# Debian 11 (bullseye, glibc 2.31) chroot and runs examples/hello there through the real
# sandbox -- `cs-invoker-pool run` (the pool, a cgroup, a confined child) and
# `sandbox-child run --explain` (each confinement step), both with CS_REQUIRE_SANDBOX=1, so an
# unconfined run fails. Then purges the package again. packaging/check-packages.sh runs it
# (`make package-check`).
#
#   packaging/bullseye-run.sh PKG.deb CHROOT_DIR
#
# CHROOT_DIR is debootstrapped (minbase, from the host's Debian mirror or CHROOT_MIRROR) when
# it does not exist yet, about a minute, and reused afterwards. Needs root (debootstrap,
# chroot, mounts). The mounts (/proc, /sys, /dev) live in a private mount namespace
# (`unshare --mount`), so they vanish with it and never reach the host's mount table.
# Exit status 0 when everything ran as expected, 1 when something did not, 2 on a usage or
# environment error.
set -uo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 PKG.deb CHROOT_DIR" >&2
    exit 2
fi
deb=$(realpath "$1")
dir=$2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
suite=bullseye

if [ "$(id -u)" -ne 0 ]; then
    echo "bullseye-run: needs root (debootstrap, chroot, mounts); or pass --no-chroot to check-packages.sh" >&2
    exit 2
fi
for tool in debootstrap unshare chroot; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bullseye-run: $tool is missing (make package-deps)" >&2; exit 2; }
done

mirror() {
    if [ -n "${CHROOT_MIRROR:-}" ]; then echo "$CHROOT_MIRROR"; return; fi
    local m
    m=$(grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v security | head -n 1)
    [ -n "$m" ] || m=$(grep -hE '^\s*deb\s' /etc/apt/sources.list 2>/dev/null \
        | awk '{print $2}' | grep -v security | head -n 1)
    echo "${m:-http://deb.debian.org/debian}"
}

if ! [ -f "$dir/.debootstrap-done" ]; then
    m=$(mirror)
    echo "bullseye-run: debootstrap --variant=minbase $suite from $m into $dir (once)"
    rm -rf "$dir" "$dir.tmp"
    mkdir -p "$(dirname "$dir")"
    if ! debootstrap --variant=minbase "$suite" "$dir.tmp" "$m" >"$dir.log" 2>&1; then
        tail -n 20 "$dir.log" >&2
        echo "bullseye-run: debootstrap failed (log: $dir.log)" >&2
        exit 2
    fi
    touch "$dir.tmp/.debootstrap-done"
    mv "$dir.tmp" "$dir"
fi
dir=$(realpath "$dir")

# The function and the package, inside the chroot.
stage=$dir/tmp/cs-check
rm -rf "$stage" && mkdir -p "$stage"
cp "$deb" "$stage/pkg.deb"
cp -r "$root/examples/hello" "$stage/hello"
chmod -R a+rX "$stage"

DIR=$dir unshare --mount --propagation private bash -s <<'EOF'
set -uo pipefail
fails=0
errf=$(mktemp)
ok() { printf '  ok    bullseye: %s\n' "$1"; }
bad() { printf '  FAIL  bullseye: %s\n' "$1"; fails=$((fails + 1)); }
# The chroot's / must be a mount point, as a container's or a host's is: the child makes / a
# private mount first, and mount(2) refuses that (EINVAL) for a plain directory.
mount --bind "$DIR" "$DIR" && mount -t proc proc "$DIR/proc" && mount --rbind /sys "$DIR/sys" \
    && mount --rbind /dev "$DIR/dev" \
    || { echo "bullseye-run: cannot mount /proc, /sys, /dev in the chroot" >&2; exit 2; }
in_chroot() { chroot "$DIR" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 NO_COLOR=1 "$@"; }

echo "  info  bullseye: $(in_chroot cat /etc/debian_version | sed 's/^/Debian /'), $(in_chroot ldd --version | head -n 1)"
if out=$(in_chroot dpkg -i /tmp/cs-check/pkg.deb 2>&1); then
    ok "dpkg -i $(in_chroot dpkg-query -W -f '${Package} ${Version}' cs-invoker-pool) (Depends: $(in_chroot dpkg-query -W -f '${Depends}' cs-invoker-pool))"
else
    bad "dpkg -i the .deb"; printf '%s\n' "$out" | sed 's/^/        /'
    exit 1
fi

# The pool: a cgroup per child, the confined child, the result line on stdout.
out=$(in_chroot CS_REQUIRE_SANDBOX=1 cs-invoker-pool run /tmp/cs-check/hello --event '{"name":"bullseye"}' 2>"$errf")
rc=$?
err=$(cat "$errf")
echo "  run   cs-invoker-pool run examples/hello --event '{\"name\":\"bullseye\"}' (CS_REQUIRE_SANDBOX=1): exit $rc"
printf '%s\n' "$out" | sed 's/^/        stdout: /'
printf '%s\n' "$err" | sed 's/^/        stderr: /'
if [ "$rc" -eq 0 ] && grep -q '"status":"success"' <<<"$out" && grep -q 'Hello, bullseye!' <<<"$out"; then
    ok "cs-invoker-pool run examples/hello: success, \"Hello, bullseye!\""
else
    bad "cs-invoker-pool run examples/hello: success, \"Hello, bullseye!\""
fi

# The child alone, each confinement step printed.
out=$(in_chroot CS_REQUIRE_SANDBOX=1 sandbox-child run /tmp/cs-check/hello --event '{"name":"bullseye"}' --explain 2>"$errf")
rc=$?
err=$(cat "$errf")
echo "  run   sandbox-child run examples/hello --explain (CS_REQUIRE_SANDBOX=1): exit $rc"
printf '%s\n' "$out" | sed 's/^/        stdout: /'
printf '%s\n' "$err" | grep -E '^confine: (seccomp|report|identity|namespaces)' | sed 's/^/        stderr: /'
if [ "$rc" -eq 0 ] && grep -q 'Hello, bullseye!' <<<"$out" && grep -q '^confine: seccomp: ' <<<"$err" \
        && ! grep -q 'unconfined' <<<"$err"; then
    ok "sandbox-child run --explain: confined (seccomp applied), success"
else
    bad "sandbox-child run --explain: confined (seccomp applied), success"
fi

if out=$(in_chroot dpkg -P cs-invoker-pool 2>&1); then
    ok "dpkg -P cs-invoker-pool (the chroot is left as it was)"
else
    bad "dpkg -P cs-invoker-pool"; printf '%s\n' "$out" | sed 's/^/        /'
fi
rm -f "$errf"
[ "$fails" -eq 0 ]
EOF
rc=$?
rm -rf "$stage"
exit "$rc"
