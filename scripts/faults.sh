#!/usr/bin/env bash
# Faults under a steady load (issue 16, item 4): real processes on loopback only.
#
# Setup: the region simulators (`hcgw simulate`), a Redis (`redis-server`, started here),
# two gateways A and B sharing it (the shared tier), and a peer gateway P (hcgw-zhejiang)
# through which A and B serve hangzhou (federation). Answers are signed and audit is strict
# on all three; A's audit trail lives on a small tmpfs mounted here (the disk-full fault).
# Load: `bench-driver steady`, open loop at a fixed rate per (gateway, region) series over
# mTLS, every lookup of a subject not asked before (so it reaches the region or the peer).
# Faults, in turn, each with a baseline, the fault and a recovery period:
#   stall  suzhou's simulator answers after 30 s (far above the 1.5 s deadline)
#   5xx    huzhou's simulator is down (HTTP 500 on every call)
#   badsig suishen's simulator signs its answers wrong (`bad_signatures`)
#   redis  Redis killed (SIGKILL), restarted after the fault period
#   peer   the peer gateway P killed (SIGKILL), restarted after the fault period
#   disk   A's audit filesystem filled up (strict audit must refuse with 503), then freed
#   crl    the intermediate CRL replaced by a newer one (nothing may break), then by one
#          revoking platform-guangdong (its handshake must be refused), then restored
# Checks per fault (scripts/faults-report.py computes them; exit 1 when one fails): the
# other series' p99 and error rate unchanged (±10% or an absolute floor), the affected
# region fails fast once its breaker opened, no 2xx answer without an audit receipt, every
# receipt (and every peer receipt A and B kept) found in its trail, no record without a
# receipt outside the disk-full fault, `hcgw audit verify` on the three trails, recovery.
# Output: bench-results/<date>-faults.md (smoke: target/faults/report-smoke.md); the run's
# data stays in target/faults (samples.jsonl, windows.jsonl, events.jsonl, the trails).
#
#   scripts/faults.sh            # full run, release build (~7 min: 7 × (10+20+20) s + setup)
#   scripts/faults.sh --smoke    # ≤ 90 s, debug build, short periods: the invariants
#   FAULTS="stall disk" scripts/faults.sh --smoke   # only some faults
# Environment: RATE (per series per second), BASE_S, FAULT_S, RECOVER_S, FAULTS, P99_FLOOR_MS,
# ERR_FLOOR. Needs root for the tmpfs (else the disk fault is "not run").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    *) echo "usage: scripts/faults.sh [--smoke]" >&2; exit 2 ;;
  esac
done
if ((SMOKE)); then
  PROFILE=dev RATE=${RATE:-6} BASE_S=${BASE_S:-2} FAULT_S=${FAULT_S:-4} RECOVER_S=${RECOVER_S:-3}
  OPEN_S=2 PEER_OPEN_MS=1500
else
  PROFILE=release RATE=${RATE:-20} BASE_S=${BASE_S:-10} FAULT_S=${FAULT_S:-20} RECOVER_S=${RECOVER_S:-20}
  OPEN_S=10 PEER_OPEN_MS=5000
fi
FAULTS=${FAULTS:-"stall 5xx badsig redis peer disk crl"}
DEADLINE_MS=1500      # every region's and the peer's deadline: the gateway's timeout
SIM_LATENCY_MS=20
WINDOW_MS=1000

# Ports 22000-22999: below the kernel's ephemeral range (32768-60999 here), where an outgoing
# connection of any program may hold a port a server is about to listen on (a CI run lost a
# simulator's port so at 37106).
SIM_BASE=22101 REDIS_PORT=22379
A_PORT=22443 A_ADMIN=22090 B_PORT=22444 B_ADMIN=22091 P_PORT=22445 P_ADMIN=22092
SUZHOU=$((SIM_BASE)) SUISHEN=$((SIM_BASE + 1)) XUZHOU=$((SIM_BASE + 3)) HANGZHOU=$((SIM_BASE + 4)) HUZHOU=$((SIM_BASE + 5))

scripts/install-deps.sh >/dev/null
nice -n 10 cargo build --profile "$PROFILE" --quiet --bin hcgw --example bench-driver
BIN=$ROOT/target/$([[ $PROFILE == dev ]] && echo debug || echo release)
OUT=$ROOT/target/faults
AUDITFS=$OUT/auditfs
mountpoint -q "$AUDITFS" 2>/dev/null && umount "$AUDITFS"
rm -rf "$OUT"; mkdir -p "$OUT" "$AUDITFS"
PKI=$ROOT/target/bench-pki   # the benchmark's dev PKI (made once, shared with scripts/bench.sh)
bash certs/dev-pki.sh "$PKI" >/dev/null
export BENCH_PKI=$PKI
# The gateway configuration's sections (cfg_*): scripts/bench-lib.sh.
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_lock
now_ms() { date +%s%3N; }

SIM_PID='' REDIS_PID='' A_PID='' B_PID='' P_PID='' POLL_PID='' DRIVER_PID=''
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local p
  for p in $DRIVER_PID $POLL_PID $A_PID $B_PID $P_PID $REDIS_PID $SIM_PID; do kill "$p" 2>/dev/null || true; done
  for p in $A_PID $B_PID $P_PID; do wait "$p" 2>/dev/null || true; done
  if mountpoint -q "$AUDITFS" 2>/dev/null; then umount "$AUDITFS" || umount -l "$AUDITFS" || true; fi
}
trap cleanup EXIT

# A's audit trail on a small filesystem of its own.
DISK_RUN=1
if mount -t tmpfs -o size=64m tmpfs "$AUDITFS" 2>"$OUT/mount.err"; then
  echo "faults: A's audit trail on a 64 MiB tmpfs ($AUDITFS)"
else
  DISK_RUN=0
  echo "faults: cannot mount a tmpfs ($(cat "$OUT/mount.err")); A's trail on the ordinary disk and the disk-full fault is NOT RUN" >&2
fi

"$BIN/hcgw" simulate --base-port $SIM_BASE --regions suzhou,suishen,xuzhou,hangzhou,huzhou \
  --latency-ms $SIM_LATENCY_MS --population 20000 --expired-share 0 --not-found-share 0 \
  --pki "$PKI" >"$OUT/sim.log" 2>&1 &
SIM_PID=$!
start_redis() {
  redis-server --port $REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no >>"$OUT/redis.log" 2>&1 &
  REDIS_PID=$!
}
start_redis

# Gateway configuration: gw_config NAME PORT ADMIN AUDIT_DIR SIGNER (the sections:
# scripts/bench-lib.sh), then the regions.
cp -r "$PKI/crl" "$OUT/crl"   # the CRLs the gateways read (replaced by the crl fault)
gw_config() {
  cfg_gateway "$1" warn
  cfg_listener "$2"
  cfg_admin "$3"
  cfg_tls "$5" "$OUT/crl" "reload_interval_ms = 500"
  cfg_client platform-shanghai platform shanghai shanghai 100000
  cfg_client platform-guangdong platform guangdong guangdong
  cat <<TOML
[shutdown]
drain_s = 0
[breaker]
open_s = $OPEN_S
[federation]
circuit_open_ms = $PEER_OPEN_MS
TOML
  cfg_cache 200000
  cfg_audit "$4" true
  cfg_signing "$5"
}
shared_gateway() { # NAME PORT ADMIN AUDIT_DIR
  gw_config "$1" "$2" "$3" "$4" hcgw-dev
  cfg_redis $REDIS_PORT
  cfg_region suzhou $SUZHOU "deadline_ms = $DEADLINE_MS"
  cfg_region suishen $SUISHEN "deadline_ms = $DEADLINE_MS"
  cfg_region xuzhou $XUZHOU "deadline_ms = $DEADLINE_MS" "fallback_to_sukang = false"
  cfg_region huzhou $HUZHOU "deadline_ms = $DEADLINE_MS"
  cat <<TOML
[[peers]]
name = "hcgw-zhejiang"
url = "https://127.0.0.1:$P_PORT"
regions = ["hangzhou"]
ca = "$PKI/root/ca.pem"
server_name = "hcgw-zhejiang"
client_cert = "$PKI/gateways/hcgw-dev/cert.pem"
client_key = "$PKI/gateways/hcgw-dev/key.pem"
deadline_ms = $DEADLINE_MS
TOML
}
A_AUDIT=$AUDITFS/trail B_AUDIT=$OUT/audit-b P_AUDIT=$OUT/audit-p
shared_gateway hcgw-faults-a $A_PORT $A_ADMIN "$A_AUDIT" >"$OUT/a.toml"
shared_gateway hcgw-faults-b $B_PORT $B_ADMIN "$B_AUDIT" >"$OUT/b.toml"
{
  gw_config hcgw-zhejiang $P_PORT $P_ADMIN "$P_AUDIT" hcgw-zhejiang
  cfg_client hcgw-dev peer shanghai shanghai "" 'max_on_behalf_of = "platform"'
  cfg_region hangzhou $HANGZHOU "deadline_ms = $DEADLINE_MS"
} >"$OUT/p.toml"
for g in a b p; do "$BIN/hcgw" check-config "$OUT/$g.toml" >"$OUT/check-$g.log" 2>&1 || { cat "$OUT/check-$g.log" >&2; exit 1; }; done
start_gw() { # a|b|p: starts it and sets its PID variable
  "$BIN/hcgw" serve --config "$OUT/$1.toml" >>"$OUT/$1.log" 2>&1 &
  case $1 in a) A_PID=$! ;; b) B_PID=$! ;; p) P_PID=$! ;; esac
}
# launch a|b|p ADMIN_PORT: starts it and waits until ready; a start that failed (its port
# still held, say) is retried.
launch() {
  local try pid
  for try in 1 2 3 4 5; do
    start_gw "$1"
    case $1 in a) pid=$A_PID ;; b) pid=$B_PID ;; p) pid=$P_PID ;; esac
    for _ in $(seq 300); do
      curl -sf "http://127.0.0.1:$2/readyz" >/dev/null && return 0
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    echo "faults: gateway $1 did not become ready (try $try): $(tail -n 1 "$OUT/$1.log")" >&2
    sleep 1
  done
  exit 1
}
launch p $P_ADMIN; launch a $A_ADMIN; launch b $B_ADMIN
for port in $SUZHOU $SUISHEN $XUZHOU $HANGZHOU $HUZHOU; do
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/_sim/stats" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/_sim/stats" >/dev/null || { echo "faults: the simulator on port $port is not up; the end of $OUT/sim.log:" >&2; tail -n 5 "$OUT/sim.log" >&2; exit 1; }
done

sim_control() { curl -sf -X POST -H 'content-type: application/json' -d "$2" "http://127.0.0.1:$1/_sim/control" >/dev/null; }
TLS_GD=(--cacert "$PKI/ca-bundle.pem" --cert "$PKI/clients/platform-guangdong/cert.pem" --key "$PKI/clients/platform-guangdong/key.pem")
# probe_guangdong: "accepted" when platform-guangdong's handshake with A and B succeeds.
probe_guangdong() {
  local a b
  a=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${TLS_GD[@]}" "https://localhost:$A_PORT/v1/regions" || true)
  b=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${TLS_GD[@]}" "https://localhost:$B_PORT/v1/regions" || true)
  if [[ $a == 200 && $b == 200 ]]; then echo accepted; elif [[ $a == 000 && $b == 000 ]]; then echo refused; else echo "mixed:$a/$b"; fi
}
# The CRL fault's CA: a copy of the dev intermediate CA (so the PKI itself is untouched).
CA_COPY=$OUT/ca-copy
crl_setup() {
  rm -rf "$CA_COPY"; cp -r "$PKI/intermediate" "$CA_COPY"
  sed -i "s|^dir *=.*|dir = $CA_COPY|" "$CA_COPY/openssl.cnf"
}
crl_publish() { # writes the copy's CRL over the gateways' file, atomically
  openssl ca -config "$CA_COPY/openssl.cnf" -gencrl -crldays 30 -out "$OUT/crl/.new.pem" 2>>"$OUT/openssl.log"
  mv "$OUT/crl/.new.pem" "$OUT/crl/intermediate.crl.pem"
}

# Circuit states of A and B, sampled every 200 ms (for "breaker opened after").
(
  while :; do
    t=$(now_ms)
    for g in A:$A_ADMIN B:$B_ADMIN; do
      curl -s --max-time 1 "http://127.0.0.1:${g#*:}/metrics" 2>/dev/null | grep '^hcgw_circuit_state' | grep 'state="open"' \
        | sed "s/^/$t ${g%%:*} /" || true
    done
    sleep 0.2
  done
) >"$OUT/circuits.log" &
POLL_PID=$!

n_faults=$(wc -w <<<"$FAULTS")
LEAD_S=$((SMOKE ? 1 : 3))
TOTAL_S=$((LEAD_S + n_faults * (BASE_S + FAULT_S + RECOVER_S) + 2))
cat >"$OUT/plan.json" <<JSON
{"gateways": [{"name": "A", "url": "https://localhost:$A_PORT"}, {"name": "B", "url": "https://localhost:$B_PORT"}],
 "regions": [{"region": "suzhou", "sim": "http://127.0.0.1:$SUZHOU"}, {"region": "suishen", "sim": "http://127.0.0.1:$SUISHEN"},
             {"region": "xuzhou", "sim": "http://127.0.0.1:$XUZHOU"}, {"region": "huzhou", "sim": "http://127.0.0.1:$HUZHOU"},
             {"region": "hangzhou", "sim": "http://127.0.0.1:$HANGZHOU"}],
 "rate_per_s": $RATE, "duration_s": $TOTAL_S, "window_ms": $WINDOW_MS, "timeout_ms": 15000,
 "samples": "$OUT/samples.jsonl", "ready_file": "$OUT/load-started"}
JSON
echo "faults: steady load of $RATE/s per series (2 gateways × 5 regions) for ${TOTAL_S}s; faults: $FAULTS"
echo "start $(cat /proc/loadavg)" >"$OUT/loadavg.txt"
"$BIN/examples/bench-driver" steady "$OUT/plan.json" >"$OUT/windows.jsonl" 2>"$OUT/driver.log" &
DRIVER_PID=$!
for _ in $(seq 600); do [[ -e $OUT/load-started ]] && break; kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.1; done
[[ -e $OUT/load-started ]] || { echo "faults: the load did not start:" >&2; cat "$OUT/driver.log" >&2; exit 1; }
sleep $LEAD_S

EVENTS=$OUT/events.jsonl
: >"$EVENTS"
# event FAULT AFFECTED(json list) TARGET(breaker target or "") BASE_START START END RECOVER_END EXTRA(json object)
event() {
  printf '{"fault":"%s","affected":%s,"breaker":"%s","base_start":%s,"start":%s,"end":%s,"recover_end":%s,"extra":%s}\n' "$@" >>"$EVENTS"
}
run_fault() {
  local f=$1 tb ts te tr affected='[]' target='' extra='{}' mid
  tb=$(now_ms); sleep "$BASE_S"
  ts=$(now_ms)
  case $f in
    stall) affected='["A/suzhou","B/suzhou"]' target=suzhou; sim_control $SUZHOU '{"latency_ms":30000}' ;;
    5xx) affected='["A/huzhou","B/huzhou"]' target=huzhou; sim_control $HUZHOU '{"down":true}' ;;
    badsig) affected='["A/suishen","B/suishen"]' target=suishen; sim_control $SUISHEN '{"bad_signatures":true}' ;;
    redis) kill -9 "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true ;;
    peer) affected='["A/hangzhou","B/hangzhou"]' target=peer:hcgw-zhejiang; kill -9 "$P_PID"; wait "$P_PID" 2>/dev/null || true ;;
    disk)
      affected='["A/suzhou","A/suishen","A/xuzhou","A/huzhou","A/hangzhou"]'
      if ((DISK_RUN)); then
        dd if=/dev/zero of="$AUDITFS/filler" bs=64k 2>/dev/null || true
        dd if=/dev/zero of="$AUDITFS/filler2" bs=512 2>/dev/null || true
        extra="{\"free_bytes_during\":$(df -B1 --output=avail "$AUDITFS" | tail -1)}"
      else
        extra='{"not_run":"tmpfs mount not permitted"}'
      fi ;;
    crl)
      local before after_new revoked restored
      before=$(probe_guangdong)
      crl_setup; crl_publish
      mid=$((FAULT_S / 2)); sleep "$mid"
      after_new=$(probe_guangdong)
      cp -r "$CA_COPY" "$CA_COPY.kept"
      openssl ca -config "$CA_COPY/openssl.cnf" -revoke "$PKI/clients/platform-guangdong/cert.pem" -crl_reason superseded 2>>"$OUT/openssl.log"
      crl_publish; sleep 1.5
      revoked=$(probe_guangdong)
      sleep $((FAULT_S - mid > 2 ? FAULT_S - mid - 2 : 0))
      te=$(now_ms)
      # Restore: the CRL without that revocation, with a higher number.
      cp "$CA_COPY/crlnumber" "$CA_COPY.kept/crlnumber"; rm -rf "$CA_COPY"; mv "$CA_COPY.kept" "$CA_COPY"
      crl_publish; sleep 1.5
      restored=$(probe_guangdong)
      extra="{\"probe_before\":\"$before\",\"probe_newer_crl\":\"$after_new\",\"probe_revoked\":\"$revoked\",\"probe_restored\":\"$restored\"}"
      sleep $((RECOVER_S > 2 ? RECOVER_S - 2 : 0)); tr=$(now_ms)
      event "$f" "$affected" "$target" "$tb" "$ts" "$te" "$tr" "$extra"
      echo "faults: $f done ($extra)"
      return ;;
    *) echo "faults: unknown fault $f" >&2; exit 2 ;;
  esac
  sleep "$FAULT_S"
  te=$(now_ms)
  case $f in
    stall) sim_control $SUZHOU "{\"latency_ms\":$SIM_LATENCY_MS}" ;;
    5xx) sim_control $HUZHOU '{"down":false}' ;;
    badsig) sim_control $SUISHEN '{"bad_signatures":false}' ;;
    redis) start_redis ;;
    peer) start_gw p ;;
    disk) rm -f "$AUDITFS/filler" "$AUDITFS/filler2" ;;
  esac
  sleep "$RECOVER_S"; tr=$(now_ms)
  event "$f" "$affected" "$target" "$tb" "$ts" "$te" "$tr" "$extra"
  echo "faults: $f done"
}
for f in $FAULTS; do run_fault "$f"; done
wait "$DRIVER_PID"; DRIVER_PID=
echo "end $(cat /proc/loadavg)" >>"$OUT/loadavg.txt"
kill "$POLL_PID" 2>/dev/null || true; POLL_PID=

# Stop the gateways (SIGTERM: drain, flush the trail) before verifying their trails.
for p in $A_PID $B_PID $P_PID; do kill "$p" 2>/dev/null || true; done
for p in $A_PID $B_PID $P_PID; do wait "$p" 2>/dev/null || true; done
A_PID='' B_PID='' P_PID=''
VERIFY_OK=1
for g in a:$A_AUDIT:hcgw-dev b:$B_AUDIT:hcgw-dev p:$P_AUDIT:hcgw-zhejiang; do
  IFS=: read -r name dir signer <<<"$g"
  if "$BIN/hcgw" audit verify "$dir" --key "$PKI/signing/$signer/cert.pem" >"$OUT/verify-$name.log" 2>&1; then
    echo "faults: audit verify $name: ok"
  else
    VERIFY_OK=0; echo "faults: audit verify $name FAILED:" >&2; tail -5 "$OUT/verify-$name.log" >&2
  fi
done

# A copy of A's trail off the tmpfs (unmounted at exit), for the report and for inspection.
cp -r "$A_AUDIT" "$OUT/audit-a"

if ((SMOKE)); then
  REPORT=$OUT/report-smoke.md
else
  mkdir -p bench-results
  REPORT=bench-results/$(date -u +%Y-%m-%d)-faults.md
  [[ -e $REPORT ]] && REPORT=bench-results/$(date -u +%Y-%m-%d-%H%M)-faults.md
fi
status=0
python3 scripts/faults-report.py --out "$OUT" --smoke "$SMOKE" --verify-ok "$VERIFY_OK" --disk-run "$DISK_RUN" \
  --deadline-ms $DEADLINE_MS --window-ms $WINDOW_MS --rate "$RATE" --periods "$BASE_S,$FAULT_S,$RECOVER_S" \
  --p99-floor-ms "${P99_FLOOR_MS:-5}" --err-floor "${ERR_FLOOR:-0.01}" \
  --trail "A=$OUT/audit-a" --trail "B=$B_AUDIT" --trail "P=$P_AUDIT" >"$REPORT" || status=$?
cat "$REPORT"
echo "report: $REPORT"
exit "$status"
