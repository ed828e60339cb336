# shellcheck shell=bash
# The setup scripts/bench.sh and scripts/scale.sh share (sourced, never run): the dev PKI,
# the region simulators, the gateway's configuration (with [signing]), nginx as an mTLS
# caching reverse proxy in front of the same simulator, the bare axum+rustls ceiling
# (examples/bench-ceiling.rs), readiness, the cached subject and the client's TLS options.
#
# The caller sets ROOT (the repository), BIN (target/debug or target/release) and OUT (its
# scratch directory, already made), then calls the functions below in its own order. Every
# process started is remembered in PIDS (and nginx by its pid file) and ended by
# bench_cleanup, which bench_init installs as the EXIT trap.

# The dev PKI in $1; exports BENCH_PKI (read by examples/bench-driver.rs) and sets PKI.
bench_pki() {
  PKI=$1
  bash "$ROOT/certs/dev-pki.sh" "$PKI" >/dev/null
  export BENCH_PKI=$PKI
}

# PIDS and the EXIT trap that ends every process the script started.
bench_init() {
  PIDS=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -f $OUT/nginx.pid ]] && kill "$(cat "$OUT/nginx.pid")" 2>/dev/null || true
}

# The region simulators from base port $1 (Xuzhou, plain HTTP, is $1 + 3), each answer
# delayed by $2 ms, $3 subjects per region, all active (none expired or unknown).
bench_start_sim() {
  "$BIN/hcgw" simulate --base-port "$1" --latency-ms "$2" --population "$3" --expired-share 0 --not-found-share 0 --pki "$PKI" >"$OUT/sim${4:-}.log" 2>&1 &
  PIDS+=($!)
}

# The gateway's configuration, without [signing] (bench_signing_section appends it):
# file $1, API port $2, admin port $3, audit directory $4, access log on ($5 = true|false),
# Xuzhou on port $6; optional extra [listener] lines $7 and extra sections $8.
bench_gateway_config() {
  local file=$1 gw_port=$2 admin_port=$3 audit=$4 access_log=$5 xz_port=$6 listener_extra=${7:-} extra=${8:-}
  {
    cat <<TOML
[gateway]
name = "hcgw-bench"
log_level = "warn"
[listener]
addr = "127.0.0.1:$gw_port"
TOML
    if [[ -n $listener_extra ]]; then printf '%s\n' "$listener_extra"; fi
    cat <<TOML
[admin]
addr = "127.0.0.1:$admin_port"
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
base_url = "http://127.0.0.1:$xz_port"
max_concurrency = 256
[regions.xuzhou.auth]
api_key = { file = "$PKI/secrets/xuzhou_api_key" }
[cache]
max_entries = 2000000
subject_key = { file = "$PKI/secrets/subject_hash_key" }
[audit]
dir = "$audit"
# fsync at its production default (after every group-committed batch); BENCH_FSYNC=interval
# measures the relaxed setting.
fsync = "${BENCH_FSYNC:-every_batch}"
# One line per request into hcgw.log (JSON off: the default pretty format, no colour).
[access_log]
enabled = $access_log
TOML
    if [[ -n $extra ]]; then printf '%s\n' "$extra"; fi
  } >"$file"
}

# Answers signed as by default (docs/proofs.md): appends [signing] to the configuration $1.
bench_signing_section() {
  cat >>"$1" <<TOML
[signing]
key = "$PKI/signing/hcgw-dev/key.pem"
cert = "$PKI/signing/hcgw-dev/cert.pem"
TOML
}

# Starts a gateway with configuration $1, logging to $2.
bench_start_gateway() {
  "$BIN/hcgw" serve --config "$1" >"$2" 2>&1 &
  PIDS+=($!)
}

# One nginx server: the mTLS caching proxy on port $1, with access-log directive $2 and
# optional listen parameters $3 (e.g. HTTP/2). Needs API_KEY and the upstream `sim`.
nginx_server() {
  cat <<SERVER
  server {
    listen 127.0.0.1:$1 ssl${3:-};
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

# nginx: the configuration a user would otherwise pick — mTLS (ssl_verify_client on, the
# same CA bundle and CRLs) and proxy_cache in front of the simulator on port $1. $2 is the
# events block's worker_connections, $3 extra main-context lines, $4 the servers
# (nginx_server calls). Writes $OUT/nginx.conf and starts nginx.
bench_start_nginx() {
  cat "$PKI/crl/intermediate.crl.pem" "$PKI/crl/root.crl.pem" >"$OUT/crls.pem"
  mkdir -p "$OUT/nginx-cache"
  cat >"$OUT/nginx.conf" <<NGINX
user root;
worker_processes auto;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
$3events { worker_connections $2; }
http {
  access_log off;
  proxy_cache_path $OUT/nginx-cache levels=1:2 keys_zone=hc:64m max_size=2g inactive=60s use_temp_path=off;
  upstream sim { server 127.0.0.1:$1; keepalive 128; }
$4
}
NGINX
  NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
  "$NGINX_BIN" -c "$OUT/nginx.conf" -e "$OUT/nginx-error.log"
}

# The bare axum+rustls handler on port $1.
bench_start_ceiling() {
  "$BIN/examples/bench-ceiling" "127.0.0.1:$1" "$PKI/gateways/hcgw-dev/cert.pem" "$PKI/gateways/hcgw-dev/key.pem" "$PKI/ca-bundle.pem" >"$OUT/ceiling.log" 2>&1 &
  PIDS+=($!)
}

# Waits (10 s at most) until every admin port given answers /readyz and the simulator on
# port $1 its stats.
bench_wait_ready() {
  local xz=$1; shift
  local i a ok
  for i in $(seq 100); do
    ok=1
    for a in "$@"; do curl -sf "http://127.0.0.1:$a/readyz" >/dev/null || ok=0; done
    ((ok)) && curl -sf "http://127.0.0.1:$xz/_sim/stats" >/dev/null && break
    sleep 0.1
  done
}

# One subject of the simulator on port $1 (its second): sets QR, TOKEN, BODY (the lookup)
# and TLS (curl's and oha's client-certificate options).
bench_subject() {
  local subject
  subject=$(curl -s "http://127.0.0.1:$1/_sim/subjects?offset=1&limit=1")
  QR=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0]["qr"])' "$subject")
  TOKEN=${QR#XZJKB:}
  BODY="{\"region\":\"xuzhou\",\"subject\":{\"qr\":\"$QR\"}}"
  TLS=(--cacert "$PKI/ca-bundle.pem" --cert "$PKI/clients/platform-shanghai/cert.pem" --key "$PKI/clients/platform-shanghai/key.pem")
}

# Waits (90 s at most) until the ports given can be listened on: ports inside the ephemeral
# range may still be held by client sockets (in TIME-WAIT, of an earlier run or another
# program). Each is tried as the servers bind it (127.0.0.1, SO_REUSEADDR).
bench_wait_ports_free() {
  local i busy
  for i in $(seq 90); do
    busy=$(python3 - "$@" <<'PY'
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        print(p, end=" ")
    finally:
        s.close()
PY
)
    [[ -z $busy ]] && return 0
    if ((i == 1)); then echo "waiting for ports $busy(held by client sockets)" >&2; fi
    sleep 1
  done
  echo "ports still in use: $busy" >&2
  return 1
}
