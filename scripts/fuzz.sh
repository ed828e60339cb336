#!/usr/bin/env bash
# Coverage-guided fuzzing of hcgw's parsers with libFuzzer on the stable toolchain.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   each target for SECONDS (default 60)
#   scripts/fuzz.sh --smoke [TARGET...]     each target for 5 s (CI)
#   scripts/fuzz.sh --list                  the targets
#
# The targets (fuzz/libfuzzer/fuzz_targets, checks in fuzz/src) are built with the
# instrumentation flags `cargo fuzz build --sanitizer none` passes (stable rustc accepts
# them: no -Z flag, no nightly), into target/fuzz. Each run starts from the committed seeds
# (fuzz/corpus/<target>, never written to) plus the inputs found so far
# (target/fuzz/corpus/<target>); a crash or a finding is saved under
# target/fuzz/artifacts/<target>/. A finding listed in fuzz/known-findings.txt is reported
# but tolerated; any other fails the run. Prints one summary line per target and exits
# non-zero when any target failed.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=60
case "${1:-}" in
--smoke)
    SECONDS_EACH=5
    shift
    ;;
--list)
    ls fuzz/libfuzzer/fuzz_targets | sed 's/\.rs$//'
    exit 0
    ;;
'' | *[!0-9]*) ;;
*)
    SECONDS_EACH=$1
    shift
    ;;
esac
if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(ls fuzz/libfuzzer/fuzz_targets | sed 's/\.rs$//')
fi

# The engine is libFuzzer, built from source by the libfuzzer-sys crate (a C++ compiler is
# all it needs); nothing else to install. cargo-fuzz is optional (same flags, same targets).
if ! command -v c++ >/dev/null 2>&1; then
    echo "fuzz.sh: a C++ compiler (c++) is needed to build libFuzzer" >&2
    exit 1
fi

HOST=$(rustc -vV | sed -n 's/^host: //p')
OUT=target/fuzz
export CARGO_TARGET_DIR="$PWD/$OUT"
# What cargo-fuzz passes for `--sanitizer none`; --target keeps them off build scripts and
# proc macros.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
build_start=$(date +%s)
cargo build --release --manifest-path fuzz/libfuzzer/Cargo.toml --target "$HOST" \
    $(printf -- '--bin %s ' "${TARGETS[@]}")
echo "fuzz.sh: built ${#TARGETS[@]} targets in $(($(date +%s) - build_start)) s"

failed=0
summary=()
for t in "${TARGETS[@]}"; do
    bin="$OUT/$HOST/release/$t"
    work="$OUT/corpus/$t"
    artifacts="$OUT/artifacts/$t"
    log="$OUT/logs/$t.log"
    mkdir -p "$work" "$artifacts" "$(dirname "$log")"
    start=$(date +%s)
    set +e
    "$bin" -max_total_time="$SECONDS_EACH" -max_len=16384 -rss_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "fuzz/corpus/$t" \
        >"$log" 2>&1
    rc=$?
    set -e
    took=$(($(date +%s) - start))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    known=$(sed -n 's/^hcgw-fuzz: known finding: [^ ]* \([^ ]*\) .*/\1/p' "$log" | sort -u | paste -sd, -)
    if [ "$rc" -eq 0 ]; then
        result="ok"
    else
        failed=1
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        why=$(grep -m1 -o 'NEW FINDING: [^(]*\|panicked at [^:]*:[0-9]*' "$log" || true)
        result="FAILED (${why:-exit $rc}; input: ${crash:-none}; log: $log)"
    fi
    line=$(printf '%-18s %12s execs %5s s  %s' "$t" "${runs:-?}" "$took" "$result")
    [ -n "$known" ] && line="$line  [known findings: $known]"
    summary+=("$line")
    echo "$line"
done

echo
echo "fuzz.sh summary (${SECONDS_EACH} s per target):"
printf '%s\n' "${summary[@]}"
exit "$failed"
