#!/usr/bin/env bash
# Runs each fuzz target for a bounded time and prints libFuzzer's final figures per target
# (`make fuzz`, `make fuzz-ci`; fuzz/README.md). Usage, from the repository root:
#
#   fuzz/run.sh SECONDS [TARGET...]        (default: every target of fuzz/Cargo.toml)
#
# Environment: CARGO (cargo), FUZZ_TARGET_DIR (target/fuzz), FUZZ_SANITIZER (address),
# FUZZ_ARGS (more libFuzzer flags). The committed seeds in fuzz/corpus/<target>/ are read,
# never written: what libFuzzer finds goes to $FUZZ_TARGET_DIR/corpus/<target>/, so a later run
# starts from it on the same machine. A crash, hang or out-of-memory leaves its input in
# fuzz/artifacts/<target>/ and makes the script exit 1 after every target has run.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
CARGO=${CARGO:-cargo}
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-target/fuzz}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^cs-invoker-pool-fuzz$')
fi

# Largest input per target: room for the biggest seed (a bundle of examples/hello is ~5 KiB,
# packaging/config.yaml ~5 KiB) and for the fuzzer to grow it.
max_len() {
  case "$1" in
    bundle_tar) echo 16384 ;;
    config_yaml | frame_to_child | frame_from_child) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

# cargo-fuzz's default build uses AddressSanitizer, whose flag (-Zsanitizer) rustc accepts only
# from a nightly toolchain. Stable 1.95 ships the sanitizer runtimes in its x86_64 Linux std;
# RUSTC_BOOTSTRAP=1 lets this stable compiler take the flag, and cargo-fuzz itself treats it as
# nightly. FUZZ_SANITIZER=none builds with coverage instrumentation only, no -Z flag at all.
export RUSTC_BOOTSTRAP=1

# Every target at once first, so a build error stops here and the build time shows apart.
build_start=$(date +%s)
"$CARGO" fuzz build --target-dir "$FUZZ_TARGET_DIR" --sanitizer "$FUZZ_SANITIZER" || exit 1
echo "fuzz: built in $(($(date +%s) - build_start)) s"

failed=()
summary=()
for t in "${targets[@]}"; do
  work="$FUZZ_TARGET_DIR/corpus/$t"
  log="$FUZZ_TARGET_DIR/logs/$t.log"
  mkdir -p "$work" "$(dirname "$log")" "fuzz/artifacts/$t"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=fuzz/dict/$t.dict")
  echo "fuzz: $t for ${seconds}s (log: $log)"
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  "$CARGO" fuzz run --target-dir "$FUZZ_TARGET_DIR" --sanitizer "$FUZZ_SANITIZER" "$t" \
    "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
    -print_final_stats=1 "${dict[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  execs=$(stat number_of_executed_units)
  rate=$(stat average_exec_per_sec)
  rss=$(stat peak_rss_mb)
  corpus=$(find "$work" -type f | wc -l)
  line=$(printf '%-18s %10s execs %8s/s  peak rss %5s MB  %5s inputs in %s' \
    "$t" "${execs:-?}" "${rate:-?}" "${rss:-?}" "$corpus" "$work")
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    line="$line  FAILED (exit $rc)"
    # The build error or libFuzzer's report, whichever it is.
    grep -E -m 20 'panicked|ERROR|SUMMARY|error(\[|:)|Test unit written|artifact' "$log" | sed 's/^/    /'
  fi
  echo "$line"
  summary+=("$line")
done

echo
echo "fuzz: ${seconds}s per target, sanitizer $FUZZ_SANITIZER"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}; inputs in fuzz/artifacts/<target>/ (fuzz/README.md: reproduce, minimise)" >&2
  exit 1
fi
