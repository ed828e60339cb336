#!/usr/bin/env bash
# The endurance run (issue 16, item 3): two hcgw instances sharing one Redis tier, the
# region simulators (20 ms latency), production-like settings (strict audit with fsync per
# batch, access log on, answers signed, JSON logs at info), all over mTLS with the dev PKI.
#  1. Maximum rate: a closed loop of cached lookups over both instances (skipped when RATE is
#     given); the instances are then stopped (their trails checked too) and started afresh.
#  2. Soak: MINUTES at half that rate, open loop, mixed traffic spread over both instances
#     (cached, uncached, batch, verify, expected errors: unknown subject, invalid requests, a
#     region taken down), each answer classified expected/unexpected by the driver
#     (`examples/bench-driver.rs soak`); RSS of each instance sampled every 10 s.
#  3. SIGTERM to both instances, `hcgw audit verify --key` on each trail, records counted.
# Criteria (scripts/soak-report.py; exit 1 when one is missed): every scheduled request
# sent and answered, zero unexpected answers, RSS growth < 5% after the warm-up (the first
# 20% or 2 minutes, whichever is shorter), each trail verifies with exactly one record per
# audited answer (predicted from the per-class tallies, and equal to the receipts the
# answers carried), both instances exit 0 on SIGTERM, no QR token or identity number sent
# appears in the logs or audit files.
# Output: bench-results/<date>-soak.md (smoke: target/soak/report.md).
#
#   scripts/soak.sh [MINUTES]     # default 10; release build
#   RATE=8000 scripts/soak.sh 10  # a fixed rate instead of half the measured maximum
#   scripts/soak.sh --smoke       # ~1 min, debug build, tiny rate: the harness and the
#                                 # invariants; the RSS threshold is not enforced (CI)
# Ports: SOAK_PORT_BASE (27000) + 90/91 (admin), 101..108 (simulators), 379 (Redis),
# 443/444 (gateways). Environment: RATE, MAX_SECONDS (10), MAX_CONC (32 per instance),
# SOAK_SECONDS (overrides MINUTES).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0
MINUTES=10
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    *[!0-9]* | '') echo "usage: scripts/soak.sh [MINUTES] | --smoke" >&2; exit 2 ;;
    *) MINUTES=$arg ;;
  esac
done
SOAK_SECONDS=${SOAK_SECONDS:-$((MINUTES * 60))}
MAX_SECONDS=${MAX_SECONDS:-10}
MAX_CONC=${MAX_CONC:-32}
PROFILE=release
if ((SMOKE)); then
  SOAK_SECONDS=${SOAK_SECONDS_SMOKE:-30} MAX_SECONDS=2 MAX_CONC=2 PROFILE=dev
  RATE=${RATE:-40}
fi
# Warm-up: the first 20% or 2 minutes, whichever is shorter.
WARMUP_S=$((SOAK_SECONDS / 5 < 120 ? SOAK_SECONDS / 5 : 120))

command -v redis-server >/dev/null || { echo "soak: redis-server is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
cargo build --profile "$PROFILE" --quiet --bin hcgw --example bench-driver
BIN=$ROOT/target/$([[ $PROFILE == dev ]] && echo debug || echo release)
HCGW=$BIN/hcgw
DRIVER=$BIN/examples/bench-driver
OUT=$ROOT/target/soak
rm -rf "$OUT"; mkdir -p "$OUT"
PKI=$ROOT/target/soak-pki
bash certs/dev-pki.sh "$PKI" >/dev/null
export BENCH_PKI=$PKI
# The gateway configuration's sections (cfg_*): scripts/bench-lib.sh.
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_lock

BASE=${SOAK_PORT_BASE:-27000}
SIM_BASE=$((BASE + 101)) REDIS_PORT=$((BASE + 379))
GW_PORTS=($((BASE + 443)) $((BASE + 444))) ADMIN_PORTS=($((BASE + 90)) $((BASE + 91)))
NAMES=(a b)
GWS="https://localhost:${GW_PORTS[0]},https://localhost:${GW_PORTS[1]}"

PIDS=()
GW_PIDS=()
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  for p in "${GW_PIDS[@]}" "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
die() { echo "soak: $*" >&2; exit 1; }
# Whether process $1 has ended (gone, or a zombie not yet waited for).
exited() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [[ -z $state || $state == Z ]]
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
"$HCGW" simulate --regions suzhou,xuzhou,hangzhou,huzhou --base-port "$SIM_BASE" --latency-ms 20 \
  --population 20000 --pki "$PKI" >"$OUT/sim.log" 2>&1 &
PIDS+=($!)

# One instance's configuration: $1 name, $2 API port, $3 admin port, $4 audit directory
# (the sections: scripts/bench-lib.sh).
gw_config() {
  cfg_gateway "hcgw-soak-$1" info json
  cfg_listener "$2"
  cfg_admin "$3"
  cfg_tls hcgw-dev "$PKI/crl"
  echo "# The quotas are not under test: far above the soak's rate."
  cfg_client platform-shanghai platform shanghai shanghai 1000000
  cfg_client checkpoint-shanghai checkpoint shanghai shanghai 1000000
  cfg_region suzhou "$SIM_BASE"
  cfg_region xuzhou $((SIM_BASE + 3)) "" "fallback_to_sukang = false"
  cfg_region hangzhou $((SIM_BASE + 4))
  cfg_region huzhou $((SIM_BASE + 5))
  cfg_cache
  echo "# The shared tier (docs/operations.md; config/shared-tier/): L2 cache, global quotas and"
  echo "# region rates, the same entry key on both instances."
  cfg_redis "$REDIS_PORT"
  echo "# Strict, fsync per batch: the defaults, written out."
  cfg_audit "$4" true every_batch
  cfg_access_log true
  cfg_signing hcgw-dev
}

# Starts both instances for phase $1 (their configs, logs and trails are named after it).
start_gateways() {
  local i
  GW_PIDS=()
  for i in 0 1; do
    local n=$1-${NAMES[$i]}
    gw_config "${NAMES[$i]}" "${GW_PORTS[$i]}" "${ADMIN_PORTS[$i]}" "$OUT/audit-$n" >"$OUT/$n.toml"
    "$HCGW" serve --config "$OUT/$n.toml" >"$OUT/$n.log" 2>&1 &
    GW_PIDS+=($!)
  done
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:${ADMIN_PORTS[0]}/readyz" >/dev/null && curl -sf "http://127.0.0.1:${ADMIN_PORTS[1]}/readyz" >/dev/null \
      && curl -sf "http://127.0.0.1:$((SIM_BASE + 5))/_sim/stats" >/dev/null && return 0
    sleep 0.1
  done
  die "the gateways of phase $1 did not become ready (logs: $OUT/$1-*.log)"
}

# SIGTERM to both instances; waits (60 s at most) and writes each exit code to $OUT/$1-<x>.exit.
stop_gateways() {
  local i
  for i in 0 1; do kill -TERM "${GW_PIDS[$i]}"; done
  for i in 0 1; do
    local rc=0 pid=${GW_PIDS[$i]}
    for _ in $(seq 600); do exited "$pid" && break; sleep 0.1; done
    if ! exited "$pid"; then
      kill -KILL "$pid"
      rc=124
      wait "$pid" 2>/dev/null || true
    else
      wait "$pid" || rc=$?
    fi
    echo "$rc" >"$OUT/$1-${NAMES[$i]}.exit"
  done
  GW_PIDS=()
}

# Verifies the trails of phase $1: `hcgw audit verify DIR --key` (exit code and output kept).
verify_trails() {
  local n rc
  for n in "${NAMES[@]}"; do
    rc=0
    "$HCGW" audit verify "$OUT/audit-$1-$n" --key "$PKI/signing/hcgw-dev/cert.pem" >"$OUT/verify-$1-$n.txt" 2>&1 || rc=$?
    echo "$rc" >"$OUT/verify-$1-$n.exit"
    cat "$OUT/audit-$1-$n"/audit-*.jsonl 2>/dev/null | wc -l >"$OUT/lines-$1-$n.txt"
  done
}

# Phase 1: the maximum cached-lookup rate, unless RATE is given.
if [[ -z ${RATE:-} || $SMOKE == 1 ]]; then
  start_gateways max
  "$DRIVER" soak-max "$GWS" "$SIM_BASE" "$MAX_CONC" "$MAX_SECONDS" "$OUT/subjects-max.txt" >"$OUT/max.json" 2>"$OUT/max.err" \
    || die "the load driver failed measuring the maximum: $(tail -n 5 "$OUT/max.err")"
  stop_gateways max
  verify_trails max
  # The soak starts from an empty shared tier.
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  MEASURED=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["answered_rate"]))' "$OUT/max.json")
  if [[ -z ${RATE:-} ]]; then RATE=$((MEASURED / 2)); fi
  echo "soak: maximum cached-lookup rate $MEASURED/s; soak at $RATE/s for $SOAK_SECONDS s"
fi
((RATE > 0)) || die "no rate to run at (RATE=$RATE)"

# Phase 2: the soak, on fresh instances.
start_gateways soak
sample_rss() { # elapsed seconds since the soak started, VmRSS (kB) of each instance, Redis used_memory_rss (kB)
  local line=$1 pid rss
  for pid in "${GW_PIDS[@]}"; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    line="$line ${rss:-0}"
  done
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/${PIDS[0]}/status" 2>/dev/null || echo 0)
  echo "$line ${rss:-0}"
}
# Once a second: the machine's busy and total CPU ticks and runnable tasks (/proc/stat), and
# each instance's CPU ticks (utime + stime): for the report's CPU section (stalls, headroom).
sample_cpu() {
  local line=$1 pid ticks
  line="$line $(awk '/^cpu / {b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6} /^procs_running/ {r=$2} END {print r}' /proc/stat | tr '\n' ' ')"
  for pid in "${GW_PIDS[@]}"; do
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    line="$line ${ticks:-0}"
  done
  echo "$line"
}
echo "t_s rss_a_kb rss_b_kb rss_redis_kb" >"$OUT/rss.txt"
echo "t_ms busy_ticks total_ticks runnable ticks_a ticks_b" >"$OUT/cpu.txt"
T0=$(date +%s)
"$DRIVER" soak "$GWS" "$SIM_BASE" "$RATE" "$SOAK_SECONDS" "$OUT/subjects.txt" >"$OUT/soak.json" 2>"$OUT/soak.err" &
DRIVER_PID=$!
PIDS+=("$DRIVER_PID")
next=0 next_cpu=0
while ! exited "$DRIVER_PID"; do
  now=$(($(date +%s) - T0))
  if ((now >= next)); then sample_rss "$now" >>"$OUT/rss.txt"; next=$((next + 10)); fi
  if ((now >= next_cpu)); then sample_cpu "$(date +%s%3N)" >>"$OUT/cpu.txt"; next_cpu=$((now + 1)); fi
  sleep 0.2
done
sample_rss "$(($(date +%s) - T0))" >>"$OUT/rss.txt"
DRIVER_RC=0
wait "$DRIVER_PID" || DRIVER_RC=$?
[[ $DRIVER_RC == 0 ]] || die "the load driver failed (exit $DRIVER_RC): $(tail -n 5 "$OUT/soak.err")"
# For the report: each instance's connection and audit counters before it stops.
for i in 0 1; do
  curl -sf "http://127.0.0.1:${ADMIN_PORTS[$i]}/metrics" >"$OUT/metrics-soak-${NAMES[$i]}.txt" || true
done
stop_gateways soak
verify_trails soak

# Personal data: no token or identity number sent may appear in a gateway log or trail.
cat "$OUT"/subjects*.txt | sort -u >"$OUT/subjects-all.txt"
LEAKS=$(cat "$OUT"/max-*.log "$OUT"/soak-*.log "$OUT"/audit-*/*.jsonl 2>/dev/null | grep -c -F -f "$OUT/subjects-all.txt" || true)
echo "${LEAKS:-0}" >"$OUT/leaks.txt"
# The same search must find a line that does hold one (the check can fail).
head -n 1 "$OUT/subjects-all.txt" | sed 's/^/{"message":"control","x":"/; s/$/"}/' \
  | grep -c -F -f "$OUT/subjects-all.txt" >"$OUT/leak-control.txt" || true
# For information: the warnings and errors the instances logged during the soak, by message.
for n in "${NAMES[@]}"; do
  { grep -h -E '"level":"(WARN|ERROR)"' "$OUT/soak-$n.log" || true; } | python3 -c '
import collections, json, sys
c = collections.Counter()
for line in sys.stdin:
    try:
        d = json.loads(line)
        c[(d.get("level"), d.get("message"), d.get("region") or d.get("target_name") or "")] += 1
    except ValueError:
        c[("?", "not JSON", "")] += 1
for (level, message, where), n in c.most_common(8):
    print(f"{n} {level} {message} {where}".rstrip())
' >"$OUT/warnings-$n.txt"
done

if ((SMOKE)); then
  REPORT=$OUT/report.md
else
  mkdir -p bench-results
  REPORT=bench-results/$(date -u +%Y-%m-%d)-soak.md
  # A second run on the same day keeps the first report.
  [[ -e $REPORT ]] && REPORT=bench-results/$(date -u +%Y-%m-%d-%H%M)-soak.md
fi
RC=0
python3 scripts/soak-report.py "$OUT" "$SMOKE" "$RATE" "$SOAK_SECONDS" "$WARMUP_S" "$PROFILE" >"$REPORT" || RC=$?
cat "$REPORT"
echo "report: $REPORT"
exit "$RC"
