#!/usr/bin/env bash
# Checks the built cs-invoker-pool packages: what they contain, with which modes, which files
# are configuration the package manager keeps, which directories the .rpm owns, the maintainer
# scripts, the dependencies, that no codeq-emulator binary slipped in, that the binaries are
# stripped, run, and need no glibc symbol version newer than GLIBC_MIN (objdump -T; the
# offending symbols are printed), that the man pages render and the bash completions complete,
# and that the packaged config.yaml passes `check-config`. Runs lintian on the .deb (errors and
# warnings fail; kept tags are explained in packaging/lintian-overrides). Finally installs the
# .deb in a Debian 11 (bullseye, glibc 2.31) chroot and runs examples/hello there through the
# real sandbox (`cs-invoker-pool run` and `sandbox-child run`, CS_REQUIRE_SANDBOX=1).
#
#   packaging/check-packages.sh [--build] [--no-lintian] [--no-chroot] [PKG.deb] [PKG.rpm]
#
# Without package arguments it takes the newest cs-invoker-pool .deb and .rpm in
# ${CARGO_TARGET_DIR:-target}/debian and .../rpm; --build runs `make deb rpm` first.
# Needs dpkg-deb, rpm (with rpm2cpio), cpio, file, objdump, man and bash (`make package-deps`
# installs them); lintian unless --no-lintian; root, debootstrap and a Debian mirror (the
# host's, or CHROOT_MIRROR) for the chroot unless --no-chroot. The chroot is debootstrapped
# once (about 1 min) and kept in ${CARGO_TARGET_DIR:-target}/chroot/bullseye.
# Exit status 0 when every check passes, 1 when one fails, 2 on a usage or environment error.
# About 15 s (lintian and the chroot run included) once the chroot exists.

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
target_dir=${CARGO_TARGET_DIR:-target}

build=0
lintian=1
chroot_run=1
glibc_min=${GLIBC_MIN:-2.28}
deb=""
rpm=""
for arg in "$@"; do
    case "$arg" in
        --build) build=1 ;;
        --no-lintian) lintian=0 ;;
        --no-chroot) chroot_run=0 ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
[ -n "$rpm" ] || rpm=$(newest "$target_dir"/rpm/cs-invoker-pool-*.rpm)
if [ -z "$deb" ] || [ ! -f "$deb" ] || [ -z "$rpm" ] || [ ! -f "$rpm" ]; then
    echo "check-packages: need a .deb and an .rpm (got '${deb}' and '${rpm}'); run make deb rpm, or pass --build" >&2
    exit 2
fi
deb=$(realpath "$deb")
rpm=$(realpath "$rpm")
tools=(dpkg-deb rpm rpm2cpio cpio file objdump man bash gzip)
[ "$lintian" -eq 1 ] && tools+=(lintian)
[ "$chroot_run" -eq 1 ] && tools+=(debootstrap unshare chroot)
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
man_pages="cs-invoker-pool cs-invoker-pool-run cs-invoker-pool-serve cs-invoker-pool-check-config
sandbox-child sandbox-child-run sandbox-child-pipe"
common_files="/usr/bin/cs-invoker-pool
/usr/bin/sandbox-child
/usr/lib/systemd/system/cs-invoker-pool.service
/etc/cs-invoker-pool/config.yaml
/etc/cs-invoker-pool/environment
/usr/share/doc/cs-invoker-pool/README.md
/usr/share/doc/cs-invoker-pool/packaging.md
$(for m in $man_pages; do echo "/usr/share/man/man1/$m.1.gz"; done)
/usr/share/bash-completion/completions/cs-invoker-pool
/usr/share/bash-completion/completions/sandbox-child
/usr/share/fish/vendor_completions.d/cs-invoker-pool.fish
/usr/share/fish/vendor_completions.d/sandbox-child.fish"
expected_modes="755 /usr/bin/cs-invoker-pool
755 /usr/bin/sandbox-child
640 /etc/cs-invoker-pool/config.yaml
600 /etc/cs-invoker-pool/environment
644 /usr/share/man/man1/cs-invoker-pool.1.gz
644 /usr/share/bash-completion/completions/cs-invoker-pool"

# glibc_check WHAT BINARY: the newest GLIBC_x.y symbol version BINARY needs (objdump -T) is at
# most GLIBC_MIN; otherwise every symbol that needs a newer one is printed.
glibc_check() {
    local what=$1 bin=$2 syms newest offending
    # objdump -T: "... DF *UND* ... (GLIBC_2.2.5) write" or "GLIBC_2.28  fcntl64".
    syms=$(objdump -T "$bin" 2>/dev/null | awk '{
        for (i = 1; i <= NF; i++) if ($i ~ /^\(?GLIBC_[0-9]/) { v = $i; gsub(/[()]/, "", v); sub(/^GLIBC_/, "", v); print v, $NF }
    }')
    if [ -z "$syms" ]; then
        fail "$what: $(basename "$bin") has glibc symbol versions (objdump -T found none)"
        return
    fi
    newest=$(awk '{ print $1 }' <<<"$syms" | sort -uV | tail -n 1)
    offending=$(awk -v min="$glibc_min" '
        function newer(a, b,    x, y, i, n) {
            n = split(a, x, "."); split(b, y, ".")
            for (i = 1; i <= (n > 3 ? n : 3); i++) { if (x[i] + 0 != y[i] + 0) return x[i] + 0 > y[i] + 0 }
            return 0
        }
        newer($1, min) { print "GLIBC_" $1, $2 }' <<<"$syms" | sort -V)
    if [ -z "$offending" ]; then
        pass "$what: $(basename "$bin") needs glibc <= $glibc_min (newest symbol version GLIBC_$newest)"
    else
        fail "$what: $(basename "$bin") needs glibc <= $glibc_min (newest symbol version GLIBC_$newest); symbols needing a newer one:"
        printf '%s\n' "$offending" | sed 's/^/        /'
    fi
}

# complete_check WHAT FILE COMMAND WORDS... EXPECTED: sourcing the bash completion FILE and
# completing the command line WORDS (the last one being completed) offers EXPECTED.
complete_check() {
    local what=$1 file=$2 cmd=$3; shift 3
    local expected=${*: -1} words=("${@:1:$#-1}") got
    got=$(bash --norc --noprofile -c '
        file=$1 cmd=$2; shift 2
        source "$file" || exit 9
        fn=$(complete -p "$cmd" 2>/dev/null | sed -E "s/.*-F ([^ ]+).*/\1/")
        [ -n "$fn" ] || exit 8
        COMP_WORDS=("$cmd" "$@"); COMP_CWORD=$#
        COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
        prev=$cmd; [ $# -ge 2 ] && prev=${COMP_WORDS[$(( $# - 1 ))]}
        "$fn" "$cmd" "${COMP_WORDS[$#]}" "$prev"
        printf "%s\n" "${COMPREPLY[@]}"' _ "$file" "$cmd" "${words[@]}" 2>&1)
    if grep -qxF -- "$expected" <<<"$got"; then
        pass "$what: bash completes '$cmd ${words[*]}' with $expected"
    else
        fail "$what: bash completes '$cmd ${words[*]}' with $expected (got: $(tr '\n' ' ' <<<"$got"))"
    fi
}

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
    glibc_check "$what" "$root/usr/bin/cs-invoker-pool"
    glibc_check "$what" "$root/usr/bin/sandbox-child"
    check "$what: cs-invoker-pool --help runs" "$root/usr/bin/cs-invoker-pool" --help
    check "$what: sandbox-child --help runs" "$root/usr/bin/sandbox-child" --help
    check "$what: the unit is packaging/cs-invoker-pool.service" cmp "$root$unit" packaging/cs-invoker-pool.service
    check "$what: config.yaml is packaging/config.yaml" cmp "$root/etc/cs-invoker-pool/config.yaml" packaging/config.yaml
    # The shipped configuration must be valid as shipped (check-config contacts nothing).
    check "$what: the packaged config.yaml passes check-config" \
        "$root/usr/bin/cs-invoker-pool" check-config "$root/etc/cs-invoker-pool/config.yaml"
    # The man pages render without a warning (the check lintian makes, for the .rpm too).
    local m warn bad=""
    for m in $man_pages; do
        warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 "$root/usr/share/man/man1/$m.1.gz" 2>&1 >/dev/null)
        [ -z "$warn" ] || bad="$bad $m: $warn;"
    done
    if [ -z "$bad" ]; then pass "$what: the $(wc -w <<<"$man_pages") man pages render without warnings"
    else fail "$what: the man pages render without warnings:$bad"; fi
    local bc=$root/usr/share/bash-completion/completions
    complete_check "$what" "$bc/sandbox-child" sandbox-child "" run
    complete_check "$what" "$bc/sandbox-child" sandbox-child run x.js --ex --explain
    complete_check "$what" "$bc/sandbox-child" sandbox-child run x.js --trigger "" cadence
    complete_check "$what" "$bc/cs-invoker-pool" cs-invoker-pool "" check-config
    complete_check "$what" "$bc/cs-invoker-pool" cs-invoker-pool run x.js --child --child-bin
    if find "$root" -iname '*codeq*emulator*' -o -iname '*codeq-emu*' -o -iname '*-docs' | grep -q .; then
        fail "$what: no codeq-emulator or cs-invoker-pool-docs file"
    else
        pass "$what: no codeq-emulator or cs-invoker-pool-docs file"
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
/usr/share/zsh/vendor-completions/_cs-invoker-pool
/usr/share/zsh/vendor-completions/_sandbox-child
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
# The glibc the binaries are linked against, and no newer (Cargo.toml says why it is not $auto).
contains "deb: depends on libc6 (>= $glibc_min), the glibc the binaries need" "$depends" "libc6 (>= $glibc_min)"
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
    # Every tag lintian reports, informational and pedantic ones included, is printed; an error
    # or a warning fails. Overridden tags are not reported (packaging/lintian-overrides).
    lint=$(lintian --tag-display-limit 0 --display-info --pedantic "$deb" 2>&1)
    printf '%s\n' "$lint" | grep -v '^$' | sed 's/^/  lintian  /'
    bad=$(grep -E '^[EW]: ' <<<"$lint")
    if [ -z "$bad" ]; then
        pass "deb: lintian reports no error and no warning ($(grep -cE '^[IPX]: ' <<<"$lint") informational/pedantic tags above)"
    else
        fail "deb: lintian reports no error and no warning"
    fi
fi

echo "== $rpm"
rpm_all=$(rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" 2>/dev/null)
rpm_list=$(awk '$1 !~ /^d/ { print $2 }' <<<"$rpm_all")
same_list "rpm: file list" "$common_files
/usr/share/zsh/site-functions/_cs-invoker-pool
/usr/share/zsh/site-functions/_sandbox-child
/usr/share/licenses/cs-invoker-pool/copyright" "$rpm_list"
# The directories the package owns: removed by `rpm -e` once empty. Its own, plus the shells'
# completion directories it co-owns (the spec says why).
same_list "rpm: owned directories" "/etc/cs-invoker-pool
/usr/share/doc/cs-invoker-pool
/usr/share/licenses/cs-invoker-pool
/usr/share/bash-completion
/usr/share/bash-completion/completions
/usr/share/zsh
/usr/share/zsh/site-functions
/usr/share/fish
/usr/share/fish/vendor_completions.d" "$(awk '$1 ~ /^d/ { print $2 }' <<<"$rpm_all")"
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
too_new=$(grep -oE 'GLIBC_[0-9.]+' <<<"$requires" | sed 's/GLIBC_//' | sort -uV \
    | awk -v min="$glibc_min" '{ if ($0 != min) print }' | while read -r v; do
        [ "$(printf '%s\n%s\n' "$v" "$glibc_min" | sort -V | tail -n 1)" = "$v" ] && echo "GLIBC_$v"; done)
if [ -z "$too_new" ]; then
    pass "rpm: requires no libc.so.6/libm.so.6 symbol version above GLIBC_$glibc_min"
else
    fail "rpm: requires no glibc symbol version above GLIBC_$glibc_min (got: $(tr '\n' ' ' <<<"$too_new"))"
fi

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
# The same binaries in both: what the chroot below proves for the .deb holds for the .rpm.
for b in cs-invoker-pool sandbox-child; do
    check "deb and rpm: the same /usr/bin/$b" cmp "$work/deb/root/usr/bin/$b" "$work/rpm/root/usr/bin/$b"
done

if [ "$chroot_run" -eq 1 ]; then
    echo "== Debian 11 (bullseye) chroot: the .deb installed, examples/hello through the real sandbox"
    packaging/bullseye-run.sh "$deb" "$target_dir/chroot/bullseye"
    case $? in
        0) pass "bullseye: dpkg -i, cs-invoker-pool run and sandbox-child run (confined) on glibc 2.31" ;;
        *) fail "bullseye: dpkg -i, cs-invoker-pool run and sandbox-child run (confined) on glibc 2.31" ;;
    esac
fi

echo
if [ "$failures" -eq 0 ]; then
    echo "check-packages: all checks passed"
    exit 0
fi
echo "check-packages: $failures check(s) failed"
exit 1
