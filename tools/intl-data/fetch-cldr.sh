#!/usr/bin/env bash
# Fetches CLDR's JSON release from npm (the cldr-json project publishes each package there) into
# DIR: cldr-core, cldr-dates-full, cldr-numbers-full, cldr-units-full. `npm pack` checks each
# tarball against the registry's integrity hash. Used by `make intl-data` only.
#
# CLDR 48.0.0 is the CLDR of Node 20's ICU (process.versions.cldr), which the tests compare
# with; ICU4X 2.4's own data (the rest of the Intl data) is CLDR 49.
set -euo pipefail
CLDR_VERSION="${CLDR_VERSION:-48.0.0}"
dir="${1:?usage: fetch-cldr.sh DIR}"
mkdir -p "$dir"
cd "$dir"
for pkg in cldr-core cldr-dates-full cldr-numbers-full cldr-units-full; do
  if [ -f "$pkg/package.json" ] && grep -q "\"version\": \"$CLDR_VERSION\"" "$pkg/package.json"; then
    continue
  fi
  rm -rf "$pkg"
  tgz=$(npm pack --silent "$pkg@$CLDR_VERSION")
  mkdir "$pkg"
  tar xzf "$tgz" -C "$pkg" --strip-components=1
  rm -f "$tgz"
done
echo "fetch-cldr.sh: CLDR $CLDR_VERSION JSON in $dir"
