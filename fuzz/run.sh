#!/bin/sh
# Run every fuzz target (or those named) for SECONDS each, one at a time,
# one job each: ./run.sh [SECONDS] [TARGET...]
# Installs cargo-fuzz when missing; needs the nightly toolchain.
# Prints each target's execution count; a crash, leak or timeout stops the
# target with libFuzzer's report and the input under artifacts/TARGET/;
# the others still run, and the script exits 1.
set -eu
cd "$(dirname "$0")"
secs=${1:-10}
[ $# -gt 0 ] && shift
targets=${*:-"tar_apply tarsplit_roundtrip image_json reference archive_load proc_parsers seccomp_profile oci_config facade_seccomp cgroup_stats"}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
mkdir -p logs
# The targets' scratch directories (std::env::temp_dir): libFuzzer ends a
# run without dropping them, so they go with this one.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/dunnage-fuzz-run.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
failed=0
for t in $targets; do
    cargo +nightly fuzz build -O "$t" 2>&1 | tail -n 1
    mkdir -p "corpus/$t"
    # Seeds: the regression inputs and the checked-in seeds.
    for d in "regressions/$t" "seeds/$t"; do
        [ -d "$d" ] && cp -n "$d"/* "corpus/$t/" 2>/dev/null || true
    done
    TMPDIR="$scratch" cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"logs/$t.log" 2>&1 || {
        echo "$t: FAILED (see fuzz/logs/$t.log)"
        tail -n 30 "logs/$t.log"
        failed=1
        continue
    }
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -n 1)
    echo "$t: ${execs:-?} executions in ${secs}s"
done
exit $failed
