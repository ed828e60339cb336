#!/usr/bin/env bash
# Where a cached lookup's CPU goes (issue 16, item 1): builds the gateway with frame
# pointers (release profile, line tables; its own target directory, target/profile-build),
# runs it as scripts/bench.sh configures it (strict audit at fsync's production default,
# access log on, answers signed unless SIGNING=none) with the region simulators, loads it
# with oha over mTLS keep-alive, and records it with `perf record --call-graph fp`.
#
#   scripts/profile.sh            # DURATION=10s CONC=64 SIGNING=ed25519 (none | p256)
#
# Writes target/profile/: perf.data, report.txt (the hottest functions, self time),
# areas.txt (each sample given to its owner — TLS, signing, audit, access log, HTTP, JSON… —
# and its kernel part, see scripts/profile-areas.py) with the gateway's CPU time per
# request, and counts.txt (a second run, not sampled: system calls and context switches per
# request, each thread's CPU per request, the audit trail's records per batch).
# A developer's tool, not run by CI (it needs its own build); CI self-tests the grouping.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10s}
CONC=${CONC:-64}
SIGNING=${SIGNING:-ed25519}
command -v perf >/dev/null || { echo "profile: perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
scripts/install-bench-deps.sh
export CARGO_TARGET_DIR=${PROFILE_TARGET_DIR:-$ROOT/target/profile-build}
CARGO_PROFILE_RELEASE_DEBUG=line-tables-only RUSTFLAGS="-C force-frame-pointers=yes" \
  cargo build --release --quiet --bin hcgw
BIN=$CARGO_TARGET_DIR/release
OUT=$ROOT/target/profile
rm -rf "$OUT"; mkdir -p "$OUT"
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_lock
bench_pki "$ROOT/target/bench-pki"
bench_init
SIM_BASE=17401; XZ_PORT=$((SIM_BASE + 3))
bench_start_sim $SIM_BASE 20 20000
conf=$OUT/gateway.toml
bench_gateway_config "$conf" 18700 18701 "$OUT/audit" true $XZ_PORT
bench_signing "$conf" "$SIGNING" || exit 2
bench_start_gateway "$conf" "$OUT/gateway.log"
GW=${PIDS[-1]}
bench_wait_ready $XZ_PORT 18701
bench_subject $XZ_PORT
curl -sf "${TLS[@]}" -H 'content-type: application/json' -d "$BODY" https://localhost:18700/v1/lookup >/dev/null
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# A warm-up run, then the recorded one.
oha --no-tui -z 3s -c "$CONC" "${TLS[@]}" -m POST -H 'content-type: application/json' -d "$BODY" \
  https://localhost:18700/v1/lookup >/dev/null
perf record -F 2999 --call-graph fp -p "$GW" -o "$OUT/perf.data" 2>"$OUT/perf-record.log" &
PERF=$!
sleep 0.5
t0=$(ticks "$GW")
oha --no-tui --output-format json -z "$DURATION" -c "$CONC" "${TLS[@]}" -m POST \
  -H 'content-type: application/json' -d "$BODY" https://localhost:18700/v1/lookup >"$OUT/oha.json"
t1=$(ticks "$GW")
kill -INT $PERF; wait $PERF || true
# A second run, not sampled: system calls and context switches per request, each thread's
# CPU time, and the audit trail's records per batch (per fsync).
threads() { for t in /proc/"$GW"/task/*; do printf '%s %s\n' "$(basename "$t")" "$(awk '{print $14 + $15}' "$t/stat")"; done; }
declare -A NAME
for t in /proc/"$GW"/task/*; do NAME[$(basename "$t")]=$(cat "$t/comm"); done
audit_counts() { # "records batches"
  curl -s http://127.0.0.1:18701/metrics | awk '$1 == "hcgw_audit_records_total" {r = $2} $1 == "hcgw_audit_batches_total" {b = $2} END {print r, b}'
}
threads >"$OUT/threads0"; a0=$(audit_counts)
perf stat -x, -e 'syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_fdatasync,context-switches' \
  -p "$GW" -o "$OUT/stat.csv" &
STAT=$!
oha --no-tui --output-format json -z "$DURATION" -c "$CONC" "${TLS[@]}" -m POST \
  -H 'content-type: application/json' -d "$BODY" https://localhost:18700/v1/lookup >"$OUT/oha-stat.json"
kill -INT $STAT; wait $STAT || true
threads >"$OUT/threads1"; a1=$(audit_counts)
for tid in "${!NAME[@]}"; do echo "$tid ${NAME[$tid]}"; done >"$OUT/thread-names"
python3 - "$OUT" "$(getconf CLK_TCK)" "$a0" "$a1" <<'PY' >"$OUT/counts.txt"
import collections, json, sys
out, tck = sys.argv[1], int(sys.argv[2])
(r0, b0), (r1, b1) = ([int(x) for x in a.split()] for a in sys.argv[3:5])
d = json.load(open(f"{out}/oha-stat.json")); n = sum(d["statusCodeDistribution"].values())
print(f"Counted run: {d['summary']['requestsPerSec']:.0f} req/s, {n} answers")
print()
print("Per request:")
for line in open(f"{out}/stat.csv"):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].replace(".", "").isdigit():
        print(f"  {int(float(f[0])) / n:6.3f}  {f[2]}")
print(f"  audit records per batch (per fsync): {(r1 - r0) / max(b1 - b0, 1):.1f}")
print()
names = dict(l.split(None, 1) for l in open(f"{out}/thread-names").read().splitlines())
t0 = dict(l.split() for l in open(f"{out}/threads0").read().splitlines())
cpu = collections.Counter()
for l in open(f"{out}/threads1").read().splitlines():
    tid, ticks = l.split()
    cpu[names.get(tid, "?").strip()] += int(ticks) - int(t0.get(tid, 0))
print("CPU per request by thread (µs):")
for name, ticks in cpu.most_common():
    if ticks:
        print(f"  {ticks * 1e6 / tck / n:6.1f}  {name}")
PY
perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio --percent-limit 0.3 -g none \
  2>/dev/null >"$OUT/report.txt"
perf script -i "$OUT/perf.data" -F comm,ip,sym,dso 2>/dev/null | python3 scripts/profile-areas.py >"$OUT/areas.txt"
python3 - "$OUT/oha.json" $((t1 - t0)) "$(getconf CLK_TCK)" "$SIGNING" <<'PY' | tee -a "$OUT/areas.txt"
import json, sys
d = json.load(open(sys.argv[1])); ticks, tck = int(sys.argv[2]), int(sys.argv[3])
codes = d.get("statusCodeDistribution", {}); n = sum(codes.values())
print(f"signing {sys.argv[4]}: {d['summary']['requestsPerSec']:.0f} req/s, p99 {d['latencyPercentiles']['p99']*1000:.2f} ms, "
      f"gateway CPU {ticks * 1e6 / tck / max(n, 1):.1f} µs/request, codes {codes}")
PY
cat "$OUT/areas.txt" "$OUT/counts.txt"
echo "profile: target/profile/report.txt (functions), areas.txt (owners), counts.txt (system calls, threads)"
