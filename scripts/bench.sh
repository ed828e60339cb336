#!/usr/bin/env bash
# The benchmark harness (issue 7): builds in release mode, starts the region simulators
# with a fixed 20 ms latency, and measures in ONE run, side by side:
#  (a) cached lookups over mTLS keep-alive: hcgw vs nginx (mTLS caching reverse proxy in
#      front of the same simulator) vs a bare axum+rustls handler (the ceiling), and the
#      ceiling signing each answer with the gateway's Ed25519 key (the signed floor);
#  (b) uncached lookups: latency hcgw adds over the simulator's own (p50, p99);
#  (c) new mTLS connections per second (keep-alive off): hcgw vs nginx;
#  (d) coalescing: 1,000 concurrent identical cold lookups → upstream calls;
#  (e) memory per cached entry at 100k and 1M entries (examples/bench-memory.rs);
#  (f) a 1,000-item batch against one region: wall time vs its rate-limit bound;
#  (g) the cost of signing answers (issue 15): cached lookups on the gateway (answers signed,
#      as by default) vs a second one, identical but without [signing], in the same rounds.
# Output: bench-results/<date>.md (medians of ROUNDS alternating rounds, and ratios).
#
#   scripts/bench.sh            # full run (ROUNDS=3, DURATION=10s)
#   scripts/bench.sh --smoke    # a few seconds, for CI: checks the harness works
#   scripts/bench.sh --access-log-off   # the same with [access_log] enabled = false, to
#                                       # report the access log's cost (it is on by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0
ACCESS_LOG=true
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    --access-log-off) ACCESS_LOG=false ;;
    *) echo "usage: scripts/bench.sh [--smoke] [--access-log-off]" >&2; exit 2 ;;
  esac
done
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONC=${CONC:-64}
UNCACHED_N=${UNCACHED_N:-300}
COALESCE_N=${COALESCE_N:-1000}
BATCH_N=${BATCH_N:-1000}
MEM_SIZES=${MEM_SIZES:-"100000 1000000"}
PROFILE=release
# The smoke run reuses the debug build of the test run (no release build in CI).
if ((SMOKE)); then ROUNDS=1 DURATION=1s CONC=8 UNCACHED_N=20 COALESCE_N=100 BATCH_N=50 MEM_SIZES="10000" PROFILE=dev; fi

scripts/install-bench-deps.sh
cargo build --profile "$PROFILE" --quiet --bin hcgw --example bench-ceiling --example bench-driver --example bench-memory
BIN=$ROOT/target/$([[ $PROFILE == dev ]] && echo debug || echo release)
OUT=$ROOT/target/bench
rm -rf "$OUT"; mkdir -p "$OUT"
# The shared setup (simulators, gateway configuration, nginx, ceiling): scripts/bench-lib.sh.
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_lock
bench_pki "$ROOT/target/bench-pki"

SIM_BASE=17101; XZ_PORT=$((SIM_BASE + 3)); GW_PORT=18443; ADMIN_PORT=19090; NGINX_PORT=18444; CEIL_PORT=18445; NGINX_LOG_PORT=18446
UNSIGNED_PORT=18447; UNSIGNED_ADMIN_PORT=19091
bench_init

bench_start_sim $SIM_BASE 20 20000

# The gateway: Xuzhou (plain HTTP simulator) is the region under test.
bench_gateway_config "$OUT/hcgw.toml" $GW_PORT $ADMIN_PORT "$OUT/audit" "$ACCESS_LOG" $XZ_PORT
# The second gateway of (g): the same without [signing] (its own ports and audit trail).
sed -e "s/:$GW_PORT\"/:$UNSIGNED_PORT\"/" -e "s/:$ADMIN_PORT\"/:$UNSIGNED_ADMIN_PORT\"/" \
  -e "s|$OUT/audit|$OUT/audit-unsigned|" -e 's/hcgw-bench/hcgw-bench-unsigned/' "$OUT/hcgw.toml" >"$OUT/hcgw-unsigned.toml"
bench_signing_section "$OUT/hcgw.toml"
bench_start_gateway "$OUT/hcgw.toml" "$OUT/hcgw.log"
GW_PID=${PIDS[-1]}
bench_start_gateway "$OUT/hcgw-unsigned.toml" "$OUT/hcgw-unsigned.log"
UNSIGNED_PID=${PIDS[-1]}

# nginx (scripts/bench-lib.sh). The target reference has no access log; a second server,
# otherwise the same, keeps nginx's default access log (one line per request, unbuffered):
# the closer match to hcgw, which writes an audit record for every lookup (reported for
# information).
API_KEY=$(cat "$PKI/secrets/xuzhou_api_key")
bench_start_nginx $XZ_PORT 8192 "" "$(nginx_server "$NGINX_PORT" "access_log off;")
$(nginx_server "$NGINX_LOG_PORT" "access_log $OUT/nginx-access.log combined;")"

bench_start_ceiling $CEIL_PORT
CEIL_PID=${PIDS[-1]}

bench_wait_ready $XZ_PORT $ADMIN_PORT $UNSIGNED_ADMIN_PORT

# One cached subject, asked through each server.
bench_subject $XZ_PORT
curl -sf "${TLS[@]}" -H 'content-type: application/json' -d "$BODY" "https://localhost:$GW_PORT/v1/lookup" >"$OUT/warm-hcgw.json"
curl -sf "${TLS[@]}" -H 'content-type: application/json' -d "$BODY" "https://localhost:$UNSIGNED_PORT/v1/lookup" >"$OUT/warm-unsigned.json"
curl -sf "${TLS[@]}" "https://localhost:$NGINX_PORT/xzjkb/v1/qr/$TOKEN/status" >"$OUT/warm-nginx.json"

getconf CLK_TCK >"$OUT/clk_tck"
# ticks PID...: user + system CPU time so far of those of the processes still running, in
# clock ticks.
ticks() {
  local t=0 p v
  for p in "$@"; do
    v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + v))
  done
  echo "$t"
}
run_oha() { # name, "server pids", extra args..., url: also the servers' CPU time (NAME.ticks)
  local name=$1 t0; local -a pids
  read -r -a pids <<<"$2"; shift 2
  t0=$(ticks "${pids[@]}")
  oha --no-tui --output-format json -z "$DURATION" -c "$CONC" "${TLS[@]}" "$@" >"$OUT/$name.json"
  echo $(($(ticks "${pids[@]}") - t0)) >"$OUT/$name.ticks"
}
for r in $(seq "$ROUNDS"); do
  run_oha "a-hcgw-$r" "$GW_PID" -m POST -H 'content-type: application/json' -d "$BODY" "https://localhost:$GW_PORT/v1/lookup"
  # nginx's master and workers, for its CPU time, taken each round: its cache loader exits a
  # minute after start.
  NGINX_PIDS="$(cat "$OUT/nginx.pid") $(pgrep -P "$(cat "$OUT/nginx.pid")" | tr '\n' ' ')"
  run_oha "a-nginx-$r" "$NGINX_PIDS" "https://localhost:$NGINX_PORT/xzjkb/v1/qr/$TOKEN/status"
  run_oha "a-nginxlog-$r" "$NGINX_PIDS" "https://localhost:$NGINX_LOG_PORT/xzjkb/v1/qr/$TOKEN/status"
  run_oha "g-unsigned-$r" "$UNSIGNED_PID" -m POST -H 'content-type: application/json' -d "$BODY" "https://localhost:$UNSIGNED_PORT/v1/lookup"
  run_oha "a-ceiling-$r" "$CEIL_PID" -m POST -H 'content-type: application/json' -d "$BODY" "https://localhost:$CEIL_PORT/v1/lookup"
  run_oha "a-floor-$r" "$CEIL_PID" -m POST -H 'content-type: application/json' -d "$BODY" "https://localhost:$CEIL_PORT/v1/lookup/signed"
  run_oha "c-hcgw-$r" "$GW_PID" --disable-keepalive -m POST -H 'content-type: application/json' -d "$BODY" "https://localhost:$GW_PORT/v1/lookup"
  run_oha "c-nginx-$r" "$NGINX_PIDS" --disable-keepalive "https://localhost:$NGINX_PORT/xzjkb/v1/qr/$TOKEN/status"
done

GW="https://localhost:$GW_PORT"; SIM="http://127.0.0.1:$XZ_PORT"
"$BIN/examples/bench-driver" uncached "$GW" "$SIM" "$UNCACHED_N" >"$OUT/b.json"
"$BIN/examples/bench-driver" coalesce "$GW" "$SIM" "$COALESCE_N" >"$OUT/d.json"
"$BIN/examples/bench-driver" batch "$GW" "$SIM" "$BATCH_N" 100 >"$OUT/f.json"
for n in $MEM_SIZES; do "$BIN/examples/bench-memory" "$n" >"$OUT/e-$n.json"; done

mkdir -p bench-results
SUFFIX=""
((SMOKE)) && SUFFIX=-smoke
[[ $ACCESS_LOG == false ]] && SUFFIX=$SUFFIX-no-access-log
REPORT=bench-results/$(date -u +%Y-%m-%d)$SUFFIX.md
# A second run on the same day keeps the first report.
[[ -e $REPORT ]] && REPORT=bench-results/$(date -u +%Y-%m-%d-%H%M)$SUFFIX.md
python3 scripts/bench-report.py "$OUT" "$ROUNDS" "$SMOKE" >"$REPORT"
printf '\nAccess log: %s (one line per request into the gateway log; `--access-log-off` measures without it). Audit: strict, `fsync = "%s"`%s.\n' \
  "$([[ $ACCESS_LOG == true ]] && echo on || echo off)" "${BENCH_FSYNC:-every_batch}" \
  "$([[ ${BENCH_FSYNC:-every_batch} == every_batch ]] && echo ' (the production default)' || echo ' (relaxed; the default is every_batch)')" >>"$REPORT"
cat "$REPORT"
echo "report: $REPORT"
