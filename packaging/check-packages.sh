#!/usr/bin/env bash
# Checks the built cs-invoker-pool packages: what they contain, with which modes, which files
# are configuration the package manager keeps, the maintainer scripts, the dependencies, that no
# codeq-emulator binary slipped in, that the binaries are stripped and run, and that the
# packaged config.yaml passes `check-config`. Also runs lintian on the .deb (no errors allowed;
# kept warnings are explained in packaging/lintian-overrides).
#
#   packaging/check-packages.sh [--build] [--no-lintian] [PKG.deb] [PKG.rpm]
#
# Without package arguments it takes the newest cs-invoker-pool .deb and .rpm in
# ${CARGO_TARGET_DIR:-target}/debian and .../generate-rpm; --build runs `make deb rpm` first.
# Needs dpkg-deb, rpm (with rpm2cpio), cpio and file; lintian unless --no-lintian.
# Exit status 0 when every check passes, 1 when one fails, 2 on a usage or environment error.
# About 5 s (lintian included) when the packages are already built.

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
target_dir=${CARGO_TARGET_DIR:-target}

build=0
lintian=1
deb=""
rpm=""
for arg in "$@"; do
    case "$arg" in
        --build) build=1 ;;
        --no-lintian) lintian=0 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *.deb) deb=$arg ;;
        *.rpm) rpm=$arg ;;
        *) echo "check-packages: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

if [ "$build" -eq 1 ]; then
    make deb rpm || { echo "check-packages: make deb rpm failed" >&2; exit 2; }
fi
newest() { ls -t "$@" 2>/dev/null | head -n 1; }
[ -n "$deb" ] || deb=$(newest "$target_dir"/debian/cs-invoker-pool_*.deb)
[ -n "$rpm" ] || rpm=$(newest "$target_dir"/generate-rpm/cs-invoker-pool-*.rpm)
if [ -z "$deb" ] || [ ! -f "$deb" ] || [ -z "$rpm" ] || [ ! -f "$rpm" ]; then
    echo "check-packages: need a .deb and an .rpm (got '${deb}' and '${rpm}'); run make deb rpm, or pass --build" >&2
    exit 2
fi
deb=$(realpath "$deb")
rpm=$(realpath "$rpm")
tools=(dpkg-deb rpm rpm2cpio cpio file)
[ "$lintian" -eq 1 ] && tools+=(lintian)
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "check-packages: $tool is missing (make package-deps)" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failures=0
pass() { printf '  ok    %s\n' "$1"; }
fail() { printf '  FAIL  %s\n' "$1"; failures=$((failures + 1)); }
check() { # check DESCRIPTION COMMAND...: passes when the command succeeds
    local what=$1; shift
    if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi
}
same_list() { # same_list WHAT EXPECTED ACTUAL (newline-separated, order ignored)
    local diff
    diff=$(diff <(printf '%s\n' "$2" | sort) <(printf '%s\n' "$3" | sort))
    if [ -z "$diff" ]; then pass "$1"; else fail "$1"; printf '%s\n' "$diff" | sed 's/^/        /'; fi
}
contains() { # contains WHAT HAYSTACK NEEDLE (fixed string)
    if grep -qF -- "$3" <<<"$2"; then pass "$1"; else fail "$1 (no '$3')"; fi
}

# The files both packages hold, by installed path.
common_files="/usr/bin/cs-invoker-pool
/usr/bin/sandbox-child
/etc/cs-invoker-pool/config.yaml
/etc/cs-invoker-pool/environment
/usr/share/doc/cs-invoker-pool/README.md
/usr/share/doc/cs-invoker-pool/packaging.md"
expected_modes="755 /usr/bin/cs-invoker-pool
755 /usr/bin/sandbox-child
640 /etc/cs-invoker-pool/config.yaml
600 /etc/cs-invoker-pool/environment"

# check_tree WHAT ROOT UNIT_PATH: checks on an unpacked package.
check_tree() {
    local what=$1 root=$2 unit=$3 b out
    for b in cs-invoker-pool sandbox-child; do
        out=$(file -b "$root/usr/bin/$b")
        if [[ $out == ELF* && $out != *"not stripped"* && $out == *stripped* ]]; then
            pass "$what: $b is a stripped ELF executable"
        else
            fail "$what: $b is not a stripped ELF executable ($out)"
        fi
    done
    check "$what: cs-invoker-pool --help runs" "$root/usr/bin/cs-invoker-pool" --help
    check "$what: sandbox-child --help runs" "$root/usr/bin/sandbox-child" --help
    check "$what: the unit is packaging/cs-invoker-pool.service" cmp "$root$unit" packaging/cs-invoker-pool.service
    check "$what: config.yaml is packaging/config.yaml" cmp "$root/etc/cs-invoker-pool/config.yaml" packaging/config.yaml
    # The shipped configuration must be valid as shipped (check-config contacts nothing).
    check "$what: the packaged config.yaml passes check-config" \
        "$root/usr/bin/cs-invoker-pool" check-config "$root/etc/cs-invoker-pool/config.yaml"
    if find "$root" -iname '*codeq*emulator*' -o -iname '*codeq-emu*' | grep -q .; then
        fail "$what: no codeq-emulator file"
    else
        pass "$what: no codeq-emulator file"
    fi
}

# check_scripts WHAT DIR NAMES...: each script exists and is valid sh.
check_scripts() {
    local what=$1 dir=$2; shift 2
    local s
    for s in "$@"; do
        if [ -s "$dir/$s" ] && sh -n "$dir/$s" 2>/dev/null; then
            pass "$what: $s present and valid sh"
        else
            fail "$what: $s present and valid sh"
        fi
    done
}

echo "== $deb"
deb_list=$(dpkg-deb --fsys-tarfile "$deb" | tar -tvf - | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }')
same_list "deb: file list" "$common_files
/usr/lib/systemd/system/cs-invoker-pool.service
/usr/share/doc/cs-invoker-pool/copyright
/usr/share/doc/cs-invoker-pool/changelog.Debian.gz
/usr/share/lintian/overrides/cs-invoker-pool" "$deb_list"
deb_modes=$(dpkg-deb --fsys-tarfile "$deb" | tar -tvf - | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $1, $2, $6 }')
while read -r mode path; do
    line=$(grep -F " $path" <<<"$deb_modes" | head -n 1)
    perms=$(printf '%s' "$line" | cut -c2-10)
    owner=$(awk '{ print $2 }' <<<"$line")
    oct=$(printf '%s' "$perms" | sed 's/rwx/7/g; s/rw-/6/g; s/r-x/5/g; s/r--/4/g; s/-wx/3/g; s/-w-/2/g; s/--x/1/g; s/---/0/g')
    if [ "$oct" = "$mode" ] && { [ "$owner" = "root/root" ] || [ "$owner" = "0/0" ]; }; then
        pass "deb: $path is $mode root/root"
    else
        fail "deb: $path is $mode root/root (got $perms $owner)"
    fi
done <<<"$expected_modes"

control=$(dpkg-deb -f "$deb")
contains "deb: Package is cs-invoker-pool" "$control" "Package: cs-invoker-pool"
depends=$(dpkg-deb -f "$deb" Depends)
contains "deb: depends on libc6 (\$auto)" "$depends" "libc6"
contains "deb: depends on passwd (useradd)" "$depends" "passwd"

mkdir -p "$work/deb/ctrl" "$work/deb/root"
dpkg-deb -e "$deb" "$work/deb/ctrl"
dpkg-deb -x "$deb" "$work/deb/root"
same_list "deb: conffiles" "/etc/cs-invoker-pool/config.yaml
/etc/cs-invoker-pool/environment" "$(cat "$work/deb/ctrl/conffiles" 2>/dev/null)"
check_scripts deb "$work/deb/ctrl" postinst prerm postrm
postinst=$(cat "$work/deb/ctrl/postinst" 2>/dev/null)
contains "deb: postinst creates cs-sandbox" "$postinst" "useradd --system"
contains "deb: postinst enables the unit" "$postinst" "deb-systemd-helper enable cs-invoker-pool.service"
contains "deb: postinst starts the unit" "$postinst" "deb-systemd-invoke start cs-invoker-pool.service"
# The generated snippets appear once, after the user is created (cargo-deb replaces every
# occurrence of the debhelper token, comments included).
if [ "$(grep -c 'deb-systemd-invoke start' <<<"$postinst")" -eq 1 ] &&
    [ "$(grep -n 'useradd --system' <<<"$postinst" | head -n 1 | cut -d: -f1)" -lt \
      "$(grep -n 'deb-systemd-invoke start' <<<"$postinst" | head -n 1 | cut -d: -f1)" ]; then
    pass "deb: postinst creates the user before it starts the unit, and starts it once"
else
    fail "deb: postinst creates the user before it starts the unit, and starts it once"
fi
contains "deb: prerm stops the unit (removal and upgrade)" "$(cat "$work/deb/ctrl/prerm" 2>/dev/null)" "deb-systemd-invoke stop cs-invoker-pool.service"
if grep -q '#DEBHELPER#' "$work/deb/ctrl"/p* 2>/dev/null; then
    fail "deb: #DEBHELPER# replaced in every script"
else
    pass "deb: #DEBHELPER# replaced in every script"
fi
check_tree deb "$work/deb/root" /usr/lib/systemd/system/cs-invoker-pool.service

if [ "$lintian" -eq 1 ]; then
    lint=$(lintian --tag-display-limit 0 "$deb" 2>&1)
    errors=$(grep -E '^E: ' <<<"$lint")
    if [ -z "$errors" ]; then
        pass "deb: lintian reports no errors"
    else
        fail "deb: lintian reports no errors"
        printf '%s\n' "$errors" | sed 's/^/        /'
    fi
    warnings=$(grep -E '^W: ' <<<"$lint")
    [ -z "$warnings" ] || printf '%s\n' "$warnings" | sed 's/^/  note  lintian /'
fi

echo "== $rpm"
rpm_list=$(rpm -qlp "$rpm" 2>/dev/null)
same_list "rpm: file list" "$common_files
/usr/lib/systemd/system/cs-invoker-pool.service
/usr/share/licenses/cs-invoker-pool/copyright" "$rpm_list"
rpm_modes=$(rpm -qp --qf '[%{FILEMODES:octal} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILENAMES}\n]' "$rpm" 2>/dev/null)
while read -r mode path; do
    line=$(grep -E " ${path}\$" <<<"$rpm_modes" | head -n 1)
    got_mode=$(awk '{ print substr($1, length($1) - 2) }' <<<"$line")
    owner=$(awk '{ print $2 }' <<<"$line")
    if [ "$got_mode" = "$mode" ] && [ "$owner" = "root/root" ]; then
        pass "rpm: $path is $mode root/root"
    else
        fail "rpm: $path is $mode root/root (got '$line')"
    fi
done <<<"$expected_modes"
contains "rpm: Name is cs-invoker-pool" "$(rpm -qp --qf '%{NAME}\n' "$rpm" 2>/dev/null)" "cs-invoker-pool"
# %config(noreplace): file flags c (config) and n (noreplace).
flags=$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" 2>/dev/null)
for f in /etc/cs-invoker-pool/config.yaml /etc/cs-invoker-pool/environment; do
    fl=$(grep -E " ${f}\$" <<<"$flags" | awk '{ print $1 }')
    if [[ $fl == *c* && $fl == *n* ]]; then
        pass "rpm: $f is %config(noreplace)"
    else
        fail "rpm: $f is %config(noreplace) (flags '$fl')"
    fi
done
requires=$(rpm -qp --requires "$rpm" 2>/dev/null)
contains "rpm: requires shadow-utils (useradd)" "$requires" "shadow-utils"
contains "rpm: requires systemd" "$requires" "systemd"
contains "rpm: requires glibc (auto-req: libc.so.6)" "$requires" "libc.so.6"

mkdir -p "$work/rpm/scripts" "$work/rpm/root"
for tag in PREIN POSTIN PREUN POSTUN; do
    rpm -qp --qf "%{$tag}\n" "$rpm" 2>/dev/null | grep -v '^(none)$' > "$work/rpm/scripts/$tag"
done
check_scripts rpm "$work/rpm/scripts" PREIN POSTIN PREUN POSTUN
contains "rpm: %pre creates cs-sandbox" "$(cat "$work/rpm/scripts/PREIN")" "useradd --system"
contains "rpm: %post applies the preset" "$(cat "$work/rpm/scripts/POSTIN")" "preset cs-invoker-pool.service"
contains "rpm: %preun disables and stops on erase" "$(cat "$work/rpm/scripts/PREUN")" "disable --now cs-invoker-pool.service"
(cd "$work/rpm/root" && rpm2cpio "$rpm" | cpio -idm --quiet)
check_tree rpm "$work/rpm/root" /usr/lib/systemd/system/cs-invoker-pool.service

echo
if [ "$failures" -eq 0 ]; then
    echo "check-packages: all checks passed"
    exit 0
fi
echo "check-packages: $failures check(s) failed"
exit 1
