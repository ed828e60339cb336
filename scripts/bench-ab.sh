#!/usr/bin/env bash
# Two builds of the gateway side by side, for a change's measured effect (issue 16): cached
# lookups over mTLS keep-alive against gateways run from binary A (the "before", e.g. a copy
# of target/release/hcgw built from an earlier commit) and binary B (this checkout's release
# build), in the same alternating rounds, each configuration as scripts/bench.sh makes it
# (strict audit at fsync's production default, access log on). Reports req/s, p99 and the
# gateway's own CPU time per request (user + system ticks over the run ÷ answers).
#
#   scripts/bench-ab.sh A_BIN [B_BIN]     # B_BIN: target/release/hcgw (built if missing)
#   VARIANTS="a-signed:A:p256 b-signed:B:ed25519 b-unsigned:B:none" scripts/bench-ab.sh A_BIN
#
# A variant is NAME:BINARY(A|B):SIGNING(none|p256|ed25519); p256 signs with the dev PKI's
# retired P-256 key (hcgw-dev-previous), ed25519 with the current one. ROUNDS (3),
# DURATION (8s), CONC (64) as in bench.sh. Writes target/bench-ab/report.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
A_BIN=${1:?usage: scripts/bench-ab.sh A_BIN [B_BIN]}
B_BIN=${2:-$ROOT/target/release/hcgw}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
CONC=${CONC:-64}
VARIANTS=${VARIANTS:-"a-signed:A:p256 a-unsigned:A:none b-signed:B:ed25519 b-signed-p256:B:p256 b-unsigned:B:none"}
[[ -x $A_BIN ]] || { echo "bench-ab: $A_BIN is not an executable" >&2; exit 2; }
if [[ ! -x $B_BIN ]]; then cargo build --release --quiet --bin hcgw; fi
scripts/install-bench-deps.sh
BIN=$(dirname "$B_BIN")
OUT=$ROOT/target/bench-ab
rm -rf "$OUT"; mkdir -p "$OUT"
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_lock
bench_pki "$ROOT/target/bench-pki"
bench_init
SIM_BASE=17301; XZ_PORT=$((SIM_BASE + 3))
bench_start_sim $SIM_BASE 20 20000

port=18600
declare -A PORT PID
admins=()
for v in $VARIANTS; do
  IFS=: read -r name which signing <<<"$v"
  case $which in A) exe=$A_BIN ;; B) exe=$B_BIN ;; *) echo "bench-ab: $v: binary is A or B" >&2; exit 2 ;; esac
  conf=$OUT/$name.toml
  bench_gateway_config "$conf" $port $((port + 1)) "$OUT/audit-$name" true $XZ_PORT
  bench_signing "$conf" "$signing" || { echo "bench-ab: in variant $v" >&2; exit 2; }
  "$exe" serve --config "$conf" >"$OUT/$name.log" 2>&1 &
  bench_started "gateway $name" "$OUT/$name.log"
  PORT[$name]=$port PID[$name]=$!
  admins+=($((port + 1)))
  port=$((port + 2))
done
bench_wait_ready $XZ_PORT "${admins[@]}"
bench_subject $XZ_PORT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for v in $VARIANTS; do
  name=${v%%:*}
  curl -sf "${TLS[@]}" -H 'content-type: application/json' -d "$BODY" \
    "https://localhost:${PORT[$name]}/v1/lookup" >"$OUT/warm-$name.json"
done
for r in $(seq "$ROUNDS"); do
  for v in $VARIANTS; do
    name=${v%%:*}
    t0=$(ticks "${PID[$name]}")
    oha --no-tui --output-format json -z "$DURATION" -c "$CONC" "${TLS[@]}" -m POST \
      -H 'content-type: application/json' -d "$BODY" "https://localhost:${PORT[$name]}/v1/lookup" >"$OUT/$name-$r.json"
    echo $(($(ticks "${PID[$name]}") - t0)) >"$OUT/$name-$r.ticks"
  done
done
python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" "$A_BIN" "$B_BIN" $VARIANTS >"$OUT/report.md" <<'PY'
import json, os, statistics, sys
out, rounds, tck, a_bin, b_bin, variants = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6:]
print(f"Medians of {rounds} alternating rounds, cached lookups, {os.cpu_count()} cores. A = `{a_bin}`, B = `{b_bin}`.")
print()
print("| variant | binary | signing | req/s | p99 ms | gateway CPU µs/request | non-200 |")
print("|---|---|---|---|---|---|---|")
for v in variants:
    name, which, signing = v.split(":")
    rps, p99, cpu, bad = [], [], [], 0
    for r in range(1, rounds + 1):
        d = json.load(open(f"{out}/{name}-{r}.json"))
        codes = d.get("statusCodeDistribution", {})
        n = sum(codes.values())
        bad += n - codes.get("200", 0)
        rps.append(d["summary"]["requestsPerSec"])
        p99.append((d["latencyPercentiles"].get("p99") or 0) * 1000)
        cpu.append(int(open(f"{out}/{name}-{r}.ticks").read()) * 1e6 / tck / max(n, 1))
    print(f"| {name} | {which} | {signing} | {statistics.median(rps):.0f} | {statistics.median(p99):.2f} | {statistics.median(cpu):.1f} | {bad} |")
PY
cat "$OUT/report.md"
if grep -qE '\| [1-9][0-9]* \|$' "$OUT/report.md"; then echo "bench-ab: some answers were not 200" >&2; exit 1; fi
