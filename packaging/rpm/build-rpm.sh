#!/usr/bin/env bash
# Builds the .rpm from packaging/rpm/cs-invoker-pool.spec with rpmbuild (`make rpm` runs it;
# packaging/README.md). Compiles nothing: it packs what `make bins pkg-docs` left.
#
#   packaging/rpm/build-rpm.sh BIN_DIR DOCS_DIR OUT_DIR VERSION RELEASE
#
# BIN_DIR holds cs-invoker-pool and sandbox-child, DOCS_DIR the generated man/ and
# completions/; the package is written as OUT_DIR/cs-invoker-pool-VERSION-RELEASE.<arch>.rpm.
# SOURCE_DATE_EPOCH (the Makefile sets it from packaging/deb/changelog) fixes the build time
# and clamps file times, so two builds of the same tree give the same payload.
set -euo pipefail

if [ $# -ne 5 ]; then
    echo "usage: $0 BIN_DIR DOCS_DIR OUT_DIR VERSION RELEASE" >&2
    exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin_dir=$(realpath "$1")
docs_dir=$(realpath "$2")
mkdir -p "$3"
out_dir=$(realpath "$3")
version=$4
release=$5

command -v rpmbuild >/dev/null 2>&1 || { echo "build-rpm: rpmbuild is missing (make package-deps)" >&2; exit 2; }
for f in "$bin_dir/cs-invoker-pool" "$bin_dir/sandbox-child" "$docs_dir/man/cs-invoker-pool.1.gz"; do
    [ -f "$f" ] || { echo "build-rpm: $f is missing (make bins pkg-docs)" >&2; exit 2; }
done

top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
defines=(
    --define "_topdir $top"
    --define "_rpmdir $out_dir"
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm"
    --define "_buildhost localhost"
    --define "pkg_version $version"
    --define "pkg_release $release"
    --define "bindir_src $bin_dir"
    --define "docs_src $docs_dir"
    --define "srcroot $root"
)
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    defines+=(--define "use_source_date_epoch_as_buildtime 1" --define "clamp_mtime_to_source_date_epoch 1")
fi
rpm_file="$out_dir/cs-invoker-pool-$version-$release.$(rpm --eval '%{_arch}').rpm"
rm -f "$rpm_file"
# --nodeps: no BuildRequires to check (nothing is built); the build machine is Debian.
if ! rpmbuild -bb --quiet --nodeps "${defines[@]}" "$root/packaging/rpm/cs-invoker-pool.spec" \
        >"$top/log" 2>&1; then
    cat "$top/log" >&2
    echo "build-rpm: rpmbuild failed" >&2
    exit 1
fi
grep -v -e 'Could not canonicalize hostname' "$top/log" >&2 || :
[ -f "$rpm_file" ] || { echo "build-rpm: rpmbuild wrote no $rpm_file" >&2; exit 1; }
echo "$rpm_file"
