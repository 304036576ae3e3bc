#!/bin/sh
# Issue 13's leak soak at full length: 1,000 library cycles (create, start,
# wait, remove in the test process) and 200 CLI cycles (dunnage create,
# start, wait, rm), then the checks that nothing is left and that the fd
# count and RSS are back (tests/soak.rs). Prints the figures
# (`soak library: ...`, `soak cli: ...`) for BENCHMARKS.md.
#   tests/soak/run.sh [LIBRARY_CYCLES [CLI_CYCLES]]
# Needs root. CI runs the short default (50 and 10) with `cargo test`.
set -u
cd "$(dirname "$0")/../.."
export DUNNAGE_SOAK_CYCLES="${1:-1000}"
export DUNNAGE_SOAK_CLI_CYCLES="${2:-200}"
export DUNNAGE_REQUIRE_PRIVILEGED=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --test soak -- --nocapture --test-threads=1 >"$log" 2>&1
status=$?
grep -E '^soak |^test |panicked|FAILED' "$log"
[ $status -eq 0 ] || tail -n 40 "$log"
exit $status
