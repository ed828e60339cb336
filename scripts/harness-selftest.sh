#!/usr/bin/env bash
# Checks the harness's own failure paths (scripts/bench-lib.sh), which the smoke runs never
# take: a second run waits for the machine-wide lock, and a simulator that cannot listen
# fails the readiness wait, named, with the end of its log. Needs the debug build of hcgw
# (target/debug/hcgw, made by the test run). A few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/target/debug
OUT=$ROOT/target/harness-selftest
rm -rf "$OUT"; mkdir -p "$OUT"
fail() { echo "harness-selftest: $*" >&2; exit 1; }

# (1) The lock: held by another holder for 2 s, bench_lock waits for it, says so, then
# takes it; a script run under the holder takes it at once.
lock=$OUT/lock
flock "$lock" sleep 2 &
holder=$!
for _ in $(seq 50); do flock -n "$lock" true 2>/dev/null || break; sleep 0.05; done
start=$(date +%s%3N)
HCGW_HARNESS_LOCK=$lock bash -c 'source scripts/bench-lib.sh; bench_lock && echo taken' >"$OUT/lock.out" 2>"$OUT/lock.err"
waited=$(($(date +%s%3N) - start))
wait "$holder"
grep -q '^taken$' "$OUT/lock.out" || fail "bench_lock did not take the lock: $(cat "$OUT/lock.err")"
grep -q 'waiting for another harness run' "$OUT/lock.err" || fail "bench_lock did not say it waits"
((waited >= 1000)) || fail "bench_lock took a held lock after $waited ms"
HCGW_HARNESS_LOCK=$lock bash -c 'source scripts/bench-lib.sh; bench_lock
  flock -n "$HCGW_HARNESS_LOCK" true && echo lock-not-held
  bash -c "source scripts/bench-lib.sh; bench_lock && echo nested"' >"$OUT/nested.out" 2>&1
grep -q '^nested$' "$OUT/nested.out" || fail "a script under the holder did not take the lock: $(cat "$OUT/nested.out")"
grep -q lock-not-held "$OUT/nested.out" && fail "bench_lock did not hold the lock"

# (2) A simulator port taken by another program: the simulator exits, and bench_wait_ready
# fails naming it, with its own error.
# Ports 24101-24108: below the kernel's ephemeral range, like every harness port.
base=24101
(source scripts/bench-lib.sh; bench_wait_ports_free $(seq $base $((base + 7)))) || fail "ports $base-$((base + 7)) are not free"
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(60)' $((base + 7)) &
squatter=$!
trap 'kill $squatter 2>/dev/null || true' EXIT
sleep 0.3
set +e
HCGW_HARNESS_LOCK=$lock ROOT=$ROOT BIN=$BIN OUT=$OUT base=$base bash -c 'set -euo pipefail
  source scripts/bench-lib.sh; bench_lock; bench_pki "$ROOT/target/bench-pki"; bench_init
  bench_start_sim "$base" 0 50
  bench_wait_ready $((base + 3))
  echo ready' >"$OUT/dead.out" 2>"$OUT/dead.err"
rc=$?
set -e
((rc != 0)) || fail "bench_wait_ready passed with a simulator port taken: $(cat "$OUT/dead.out")"
grep -q '^ready$' "$OUT/dead.out" && fail "bench_wait_ready went on with the simulator dead"
grep -q 'simulator (pid [0-9]*) is not running' "$OUT/dead.err" || fail "the dead simulator is not named: $(cat "$OUT/dead.err")"
grep -q "cannot listen on 127.0.0.1:$((base + 7))" "$OUT/dead.err" || fail "the simulator's error is not shown: $(cat "$OUT/dead.err")"
(($(grep -c 'is not running' "$OUT/dead.err") == 1)) || fail "the dead simulator is reported more than once"
echo "harness-selftest: ok (lock waited $waited ms; a taken simulator port fails readiness, named)"
