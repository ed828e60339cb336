#!/usr/bin/env bash
# The benchmark harness (issue 7): builds in release mode, starts the region simulators
# with a fixed 20 ms latency, and measures in ONE run, side by side:
#  (a) cached lookups over mTLS keep-alive: hcgw vs nginx (mTLS caching reverse proxy in
#      front of the same simulator) vs a bare axum+rustls handler (the ceiling);
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
PKI=$ROOT/target/bench-pki
bash certs/dev-pki.sh "$PKI" >/dev/null
export BENCH_PKI=$PKI

SIM_BASE=17101; XZ_PORT=$((SIM_BASE + 3)); GW_PORT=18443; ADMIN_PORT=19090; NGINX_PORT=18444; CEIL_PORT=18445; NGINX_LOG_PORT=18446
UNSIGNED_PORT=18447; UNSIGNED_ADMIN_PORT=19091
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [[ -f $OUT/nginx.pid ]] && kill "$(cat "$OUT/nginx.pid")" 2>/dev/null || true; }
trap cleanup EXIT

"$BIN/hcgw" simulate --base-port $SIM_BASE --latency-ms 20 --population 20000 --expired-share 0 --not-found-share 0 --pki "$PKI" >"$OUT/sim.log" 2>&1 &
PIDS+=($!)

# The gateway: Xuzhou (plain HTTP simulator) is the region under test.
cat >"$OUT/hcgw.toml" <<TOML
[gateway]
name = "hcgw-bench"
log_level = "warn"
[listener]
addr = "127.0.0.1:$GW_PORT"
[admin]
addr = "127.0.0.1:$ADMIN_PORT"
[tls]
cert = "$PKI/gateways/hcgw-dev/cert.pem"
key = "$PKI/gateways/hcgw-dev/key.pem"
client_ca = ["$PKI/ca-bundle.pem"]
crls = ["$PKI/crl/intermediate.crl.pem", "$PKI/crl/root.crl.pem"]
[[clients]]
name = "platform-shanghai"
role = "platform"
jurisdiction = "jiangsu"
subject = "O=shanghai, OU=platform, CN=platform-shanghai"
rate_limit_per_s = 1000000
[regions.xuzhou]
base_url = "http://127.0.0.1:$XZ_PORT"
max_concurrency = 256
[regions.xuzhou.auth]
api_key = { file = "$PKI/secrets/xuzhou_api_key" }
[cache]
max_entries = 2000000
subject_key = { file = "$PKI/secrets/subject_hash_key" }
[audit]
dir = "$OUT/audit"
fsync = "interval"
# One line per request into hcgw.log (JSON off: the default pretty format, no colour).
[access_log]
enabled = $ACCESS_LOG
TOML
# The second gateway of (g): the same without [signing] (its own ports and audit trail).
sed -e "s/:$GW_PORT\"/:$UNSIGNED_PORT\"/" -e "s/:$ADMIN_PORT\"/:$UNSIGNED_ADMIN_PORT\"/" \
  -e "s|$OUT/audit|$OUT/audit-unsigned|" -e 's/hcgw-bench/hcgw-bench-unsigned/' "$OUT/hcgw.toml" >"$OUT/hcgw-unsigned.toml"
# Answers signed as by default (docs/proofs.md).
cat >>"$OUT/hcgw.toml" <<TOML
[signing]
key = "$PKI/signing/hcgw-dev/key.pem"
cert = "$PKI/signing/hcgw-dev/cert.pem"
TOML
"$BIN/hcgw" serve --config "$OUT/hcgw.toml" >"$OUT/hcgw.log" 2>&1 &
PIDS+=($!)
"$BIN/hcgw" serve --config "$OUT/hcgw-unsigned.toml" >"$OUT/hcgw-unsigned.log" 2>&1 &
PIDS+=($!)

# nginx: the configuration a user would otherwise pick — mTLS (ssl_verify_client on, the
# same CA bundle and CRLs) and proxy_cache in front of the same simulator. The target
# reference has no access log; a second server, otherwise the same, keeps nginx's default
# access log (one line per request, unbuffered): the closer match to hcgw, which writes an
# audit record for every lookup (reported for information).
cat "$PKI/crl/intermediate.crl.pem" "$PKI/crl/root.crl.pem" >"$OUT/crls.pem"
API_KEY=$(cat "$PKI/secrets/xuzhou_api_key")
mkdir -p "$OUT/nginx-cache"
# One nginx server: the mTLS caching proxy on port $1, with access-log directive $2.
nginx_server() {
  cat <<SERVER
  server {
    listen 127.0.0.1:$1 ssl;
    $2
    ssl_certificate $PKI/gateways/hcgw-dev/cert.pem;
    ssl_certificate_key $PKI/gateways/hcgw-dev/key.pem;
    ssl_client_certificate $PKI/ca-bundle.pem;
    ssl_crl $OUT/crls.pem;
    ssl_verify_client on;
    ssl_verify_depth 3;
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000000;
    location /xzjkb/ {
      proxy_pass http://sim;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Api-Key "$API_KEY";
      proxy_cache hc;
      proxy_cache_key \$uri;
      proxy_cache_valid 200 60s;
      proxy_cache_lock on;
    }
  }
SERVER
}
cat >"$OUT/nginx.conf" <<NGINX
user root;
worker_processes auto;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  proxy_cache_path $OUT/nginx-cache levels=1:2 keys_zone=hc:64m max_size=2g inactive=60s use_temp_path=off;
  upstream sim { server 127.0.0.1:$XZ_PORT; keepalive 128; }
$(nginx_server "$NGINX_PORT" "access_log off;")
$(nginx_server "$NGINX_LOG_PORT" "access_log $OUT/nginx-access.log combined;")
}
NGINX
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
"$NGINX_BIN" -c "$OUT/nginx.conf" -e "$OUT/nginx-error.log"

"$BIN/examples/bench-ceiling" "127.0.0.1:$CEIL_PORT" "$PKI/gateways/hcgw-dev/cert.pem" "$PKI/gateways/hcgw-dev/key.pem" "$PKI/ca-bundle.pem" >"$OUT/ceiling.log" 2>&1 &
PIDS+=($!)

for i in $(seq 100); do
  curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null && curl -sf "http://127.0.0.1:$UNSIGNED_ADMIN_PORT/readyz" >/dev/null \
    && curl -sf "http://127.0.0.1:$XZ_PORT/_sim/stats" >/dev/null && break
  sleep 0.1
done

# One cached subject, asked through each server.
SUBJECT=$(curl -s "http://127.0.0.1:$XZ_PORT/_sim/subjects?offset=1&limit=1")
QR=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0]["qr"])' "$SUBJECT")
TOKEN=${QR#XZJKB:}
BODY="{\"region\":\"xuzhou\",\"subject\":{\"qr\":\"$QR\"}}"
TLS=(--cacert "$PKI/ca-bundle.pem" --cert "$PKI/clients/platform-shanghai/cert.pem" --key "$PKI/clients/platform-shanghai/key.pem")
curl -sf --cacert "$PKI/ca-bundle.pem" --cert "$PKI/clients/platform-shanghai/cert.pem" --key "$PKI/clients/platform-shanghai/key.pem" \
  -H 'content-type: application/json' -d "$BODY" "https://localhost:$GW_PORT/v1/lookup" >"$OUT/warm-hcgw.json"
curl -sf --cacert "$PKI/ca-bundle.pem" --cert "$PKI/clients/platform-shanghai/cert.pem" --key "$PKI/clients/platform-shanghai/key.pem" \
  -H 'content-type: application/json' -d "$BODY" "https://localhost:$UNSIGNED_PORT/v1/lookup" >"$OUT/warm-unsigned.json"
curl -sf --cacert "$PKI/ca-bundle.pem" --cert "$PKI/clients/platform-shanghai/cert.pem" --key "$PKI/clients/platform-shanghai/key.pem" \
  "https://localhost:$NGINX_PORT/xzjkb/v1/qr/$TOKEN/status" >"$OUT/warm-nginx.json"

run_oha() { # name, extra args..., url
  local name=$1; shift
  oha --no-tui --output-format json -z "$DURATION" -c "$CONC" "${TLS[@]}" "$@" >"$OUT/$name.json"
}
for r in $(seq "$ROUNDS"); do
  run_oha "a-hcgw-$r" -m POST -H 'content-type: application/json' -d "$BODY" "https://localhost:$GW_PORT/v1/lookup"
  run_oha "a-nginx-$r" "https://localhost:$NGINX_PORT/xzjkb/v1/qr/$TOKEN/status"
  run_oha "a-nginxlog-$r" "https://localhost:$NGINX_LOG_PORT/xzjkb/v1/qr/$TOKEN/status"
  run_oha "g-unsigned-$r" -m POST -H 'content-type: application/json' -d "$BODY" "https://localhost:$UNSIGNED_PORT/v1/lookup"
  run_oha "a-ceiling-$r" -m POST -H 'content-type: application/json' -d "$BODY" "https://localhost:$CEIL_PORT/v1/lookup"
  run_oha "c-hcgw-$r" --disable-keepalive -m POST -H 'content-type: application/json' -d "$BODY" "https://localhost:$GW_PORT/v1/lookup"
  run_oha "c-nginx-$r" --disable-keepalive "https://localhost:$NGINX_PORT/xzjkb/v1/qr/$TOKEN/status"
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
printf '\nAccess log: %s (one line per request into the gateway log; `--access-log-off` measures without it).\n' \
  "$([[ $ACCESS_LOG == true ]] && echo on || echo off)" >>"$REPORT"
cat "$REPORT"
echo "report: $REPORT"
