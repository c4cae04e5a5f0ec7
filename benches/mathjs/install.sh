#!/usr/bin/env bash
# Installs mathjs and esbuild (package.json here, exact versions, package-lock.json's integrity
# hashes) into $1 (target/bench/mathjs) and bundles entry.mjs with esbuild into
# $1/bundle/function.js (~1.4 MB, not minified: what a user deploys). Once: a stamp holding the
# inputs' hash skips all of it when nothing changed. Never fails the bench: without npm or the
# registry the bytecode figures are skipped, and the bench says so.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$1"
mkdir -p "$dest"
cp "$here/import.mjs" "$dest/"
want="$(cat "$here/package.json" "$here/package-lock.json" "$here/entry.mjs" | sha256sum | cut -c1-64)"
if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$want" ] && [ -f "$dest/bundle/function.mjs" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "bench mathjs: npm not found; the compiled-module cache figures are skipped" >&2
  exit 0
fi
cp "$here/package.json" "$here/package-lock.json" "$here/entry.mjs" "$dest/"
echo "bench mathjs: installing mathjs and esbuild into $dest"
if ! (cd "$dest" && timeout 600 npm ci --no-audit --no-fund --loglevel=error); then
  echo "bench mathjs: npm ci failed; the compiled-module cache figures are skipped" >&2
  exit 0
fi
mkdir -p "$dest/bundle"
# .mjs beside function.js: the same bytes, which Node imports as ES module without guessing.
if (cd "$dest" && ./node_modules/.bin/esbuild entry.mjs --bundle --format=esm --platform=neutral \
      --main-fields=module,main --log-level=warning --outfile=bundle/function.js) &&
   cp "$dest/bundle/function.js" "$dest/bundle/function.mjs"; then
  echo "$want" > "$dest/.stamp"
else
  echo "bench mathjs: esbuild failed; the compiled-module cache figures are skipped" >&2
fi
exit 0
