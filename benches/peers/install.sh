#!/usr/bin/env bash
# Installs the bench's peers (package.json here, exact versions, package-lock.json's
# integrity hashes) into $1 (target/bench/peers), once: a stamp holding the lock file's hash
# skips the install when nothing changed. Never fails the bench: without npm or the registry
# the peers are skipped, and the bench says so.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$1"
mkdir -p "$dest"
# The scripts run from beside node_modules (ESM resolves `isolated-vm` from the script's place).
cp "$here/ivm.mjs" "$here/runner.mjs" "$dest/"
want="$(sha256sum "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-64)"
if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$want" ] && [ -x "$dest/node_modules/.bin/node" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "bench peers: npm not found; isolated-vm and deno are skipped" >&2
  exit 0
fi
cp "$here/package.json" "$here/package-lock.json" "$dest/"
echo "bench peers: installing $(tr -d '\n' < "$here/package.json" | grep -o '"dependencies": *{[^}]*}') into $dest"
if (cd "$dest" && timeout 600 npm ci --no-audit --no-fund --loglevel=error); then
  echo "$want" > "$dest/.stamp"
else
  echo "bench peers: npm ci failed; isolated-vm and deno are skipped" >&2
fi
exit 0
