# shellcheck shell=bash
# The benchmark harness's shared setup, sourced (never run) by scripts/bench.sh,
# scripts/scale.sh, scripts/bench-ab.sh and scripts/profile.sh, each taking what it needs
# after the machine-wide lock (bench_lock, taken first by every script): the dev PKI, the
# region simulators, the gateway's configuration (with [signing]), nginx as an mTLS caching
# reverse proxy in front of the same simulator, the bare axum+rustls ceiling
# (examples/bench-ceiling.rs), readiness, the cached subject and the client's TLS options.
# scripts/soak.sh and scripts/faults.sh source it for the lock (bench_lock) and the gateway
# configuration's sections (the cfg_* functions, which need nothing but PKI) only.
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

# One harness run at a time on this machine. The scripts listen on fixed ports, so two runs
# at once (two checkouts; a CI run beside a session's own) would each answer the other's
# requests, and the first to stop would take the other's simulator with it. Every script
# that starts servers on fixed ports calls this first; it waits (30 min at most) for the run
# holding the lock. A script run by one holding it (HCGW_HARNESS_LOCKED) takes it again as
# its own. The lock is an open file description: processes the run started hold it too,
# until they end, as they hold its ports.
bench_lock() {
  [[ -n ${HCGW_HARNESS_LOCKED:-} ]] && return 0
  local lock=${HCGW_HARNESS_LOCK:-/tmp/hcgw-harness.lock}
  exec {BENCH_LOCK_FD}>>"$lock"
  if ! flock -n "$BENCH_LOCK_FD"; then
    echo "waiting for another harness run on this machine to end, its servers included (lock $lock)" >&2
    if ! flock -w 1800 "$BENCH_LOCK_FD"; then
      echo "the harness lock $lock is still held after 30 min: is a server of an earlier run still running?" >&2
      return 1
    fi
  fi
  export HCGW_HARNESS_LOCKED=1
}

# PIDS and the EXIT trap that ends every process the script started; each process's name
# and log (bench_started) for the report of the ones that died.
bench_init() {
  PIDS=()
  declare -gA BENCH_NAME=() BENCH_LOG=() BENCH_REPORTED=()
  trap bench_cleanup EXIT
}
bench_cleanup() {
  local rc=$?
  ((rc == 0)) || bench_report_dead
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -f $OUT/nginx.pid ]] && kill "$(cat "$OUT/nginx.pid")" 2>/dev/null || true
}
# Remembers the process just started in the background ($!) as NAME ($1), logging to $2.
bench_started() {
  PIDS+=($!)
  BENCH_NAME[$!]=$1 BENCH_LOG[$!]=$2
}
# Every started process that is no longer running, with the end of its log, on stderr
# (each once); fails when there is one.
bench_report_dead() {
  local p dead=0
  for p in "${PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null && continue
    dead=1
    [[ -n ${BENCH_REPORTED[$p]:-} ]] && continue
    BENCH_REPORTED[$p]=1
    echo "${BENCH_NAME[$p]:-process} (pid $p) is not running; the end of ${BENCH_LOG[$p]:-its log}:" >&2
    [[ -n ${BENCH_LOG[$p]:-} ]] && tail -n 20 "${BENCH_LOG[$p]}" | sed 's/^/  | /' >&2
  done
  ((dead == 0))
}

# The region simulators from base port $1 (Xuzhou, plain HTTP, is $1 + 3), each answer
# delayed by $2 ms, $3 subjects per region, all active (none expired or unknown).
bench_start_sim() {
  BENCH_SIM_LOG=$OUT/sim${4:-}.log
  "$BIN/hcgw" simulate --base-port "$1" --latency-ms "$2" --population "$3" --expired-share 0 --not-found-share 0 --pki "$PKI" >"$BENCH_SIM_LOG" 2>&1 &
  bench_started simulator "$BENCH_SIM_LOG"
}

# The gateway's configuration, section by section: each cfg_* function prints one TOML
# section (or one [[clients]] entry) to stdout, and a script concatenates the ones it needs
# (bench_gateway_config below; gw_config in scripts/soak.sh and scripts/faults.sh). Paths
# are those of the dev PKI in PKI. An optional EXTRA argument is printed as is, one or more
# lines at the end of the section (nothing when empty).
cfg_extra() { if [[ -n ${1:-} ]]; then printf '%s\n' "$1"; fi; }

# [gateway]: name $1, log_level $2, log_format $3 (left out when empty: the default).
cfg_gateway() {
  printf '[gateway]\nname = "%s"\n' "$1"
  if [[ -n ${3:-} ]]; then printf 'log_format = "%s"\n' "$3"; fi
  printf 'log_level = "%s"\n' "$2"
}

# [listener] on 127.0.0.1, port $1; EXTRA $2.
cfg_listener() {
  printf '[listener]\naddr = "127.0.0.1:%s"\n' "$1"
  cfg_extra "${2:-}"
}

# [admin] on 127.0.0.1, port $1.
cfg_admin() { printf '[admin]\naddr = "127.0.0.1:%s"\n' "$1"; }

# [tls]: the dev PKI's server certificate of gateway $1 (gateways/$1), the CA bundle, the
# CRLs intermediate.crl.pem and root.crl.pem of directory $2 (usually $PKI/crl); EXTRA $3.
cfg_tls() {
  cat <<TOML
[tls]
cert = "$PKI/gateways/$1/cert.pem"
key = "$PKI/gateways/$1/key.pem"
client_ca = ["$PKI/ca-bundle.pem"]
crls = ["$2/intermediate.crl.pem", "$2/root.crl.pem"]
TOML
  cfg_extra "${3:-}"
}

# One [[clients]] entry: name $1 (the certificate's CN), role $2 (its OU), the subject's
# organisation $3 (O), jurisdiction $4, rate_limit_per_s $5 (left out when empty: the
# default); EXTRA $6.
cfg_client() {
  cat <<TOML
[[clients]]
name = "$1"
role = "$2"
jurisdiction = "$4"
subject = "O=$3, OU=$2, CN=$1"
TOML
  if [[ -n ${5:-} ]]; then printf 'rate_limit_per_s = %s\n' "$5"; fi
  cfg_extra "${6:-}"
}

# [regions.$1] on http://127.0.0.1:$2 (a simulator) with EXTRA $3, then its
# [regions.$1.auth]: the credentials the dev PKI holds for that region (secrets/, and
# suishen's upstream signing keys), with EXTRA $4 (e.g. "fallback_to_sukang = false").
cfg_region() {
  printf '[regions.%s]\nbase_url = "http://127.0.0.1:%s"\n' "$1" "$2"
  cfg_extra "${3:-}"
  printf '[regions.%s.auth]\n' "$1"
  case $1 in
    suzhou)
      cat <<TOML
app_id = "hcgw-dev"
app_secret = { file = "$PKI/secrets/suzhou_app_secret" }
TOML
      ;;
    suishen)
      cat <<TOML
client_id = "hcgw-dev"
client_secret = { file = "$PKI/secrets/suishen_client_secret" }
signing_keys = [
  { key_id = "sign-key-1", public_key = "$PKI/upstream/suishen/sign-key-1.pub.pem" },
  { key_id = "sign-key-2", public_key = "$PKI/upstream/suishen/sign-key-2.pub.pem" },
]
TOML
      ;;
    xuzhou) printf 'api_key = { file = "%s" }\n' "$PKI/secrets/xuzhou_api_key" ;;
    hangzhou) printf 'appcode = { file = "%s" }\n' "$PKI/secrets/hangzhou_appcode" ;;
    huzhou) printf 'token = { file = "%s" }\n' "$PKI/secrets/huzhou_token" ;;
    *) echo "cfg_region: no dev credentials for region $1" >&2; return 1 ;;
  esac
  cfg_extra "${4:-}"
}

# [cache]: max_entries $1 (left out when empty: the default), the subject hash key.
cfg_cache() {
  printf '[cache]\n'
  if [[ -n ${1:-} ]]; then printf 'max_entries = %s\n' "$1"; fi
  printf 'subject_key = { file = "%s" }\n' "$PKI/secrets/subject_hash_key"
}

# [redis]: the shared tier on 127.0.0.1, port $1, with the dev entry key.
cfg_redis() {
  cat <<TOML
[redis]
enabled = true
url = "redis://127.0.0.1:$1"
entry_key = { file = "$PKI/secrets/redis_entry_key" }
TOML
}

# [audit]: directory $1, strict $2 (true|false) and fsync $3 (e.g. every_batch), each left
# out when empty (the defaults).
cfg_audit() {
  printf '[audit]\ndir = "%s"\n' "$1"
  if [[ -n ${2:-} ]]; then printf 'strict = %s\n' "$2"; fi
  if [[ -n ${3:-} ]]; then printf 'fsync = "%s"\n' "$3"; fi
}

# [access_log]: enabled = $1 (true|false).
cfg_access_log() { printf '[access_log]\nenabled = %s\n' "$1"; }

# [signing]: the dev PKI's answer-signing key and certificate of signer $1 (signing/$1).
cfg_signing() {
  printf '[signing]\nkey = "%s"\ncert = "%s"\n' "$PKI/signing/$1/key.pem" "$PKI/signing/$1/cert.pem"
}

# The benchmarks' gateway configuration, without [signing] (bench_signing_section appends
# it): file $1, API port $2, admin port $3, audit directory $4, access log on ($5 = true|false),
# Xuzhou on port $6; optional extra [listener] lines $7 and extra sections $8.
bench_gateway_config() {
  local file=$1 gw_port=$2 admin_port=$3 audit=$4 access_log=$5 xz_port=$6 listener_extra=${7:-} extra=${8:-}
  {
    cfg_gateway hcgw-bench warn
    cfg_listener "$gw_port" "$listener_extra"
    cfg_admin "$admin_port"
    cfg_tls hcgw-dev "$PKI/crl"
    cfg_client platform-shanghai platform shanghai jiangsu 1000000
    cfg_region xuzhou "$xz_port" "max_concurrency = 256"
    cfg_cache 2000000
    cfg_audit "$audit"
    echo "# fsync at its production default (after every group-committed batch); BENCH_FSYNC=interval"
    echo "# measures the relaxed setting."
    printf 'fsync = "%s"\n' "${BENCH_FSYNC:-every_batch}"
    echo "# One line per request into hcgw.log (JSON off: the default pretty format, no colour)."
    cfg_access_log "$access_log"
    cfg_extra "$extra"
  } >"$file"
}

# Answers signed as by default (docs/proofs.md): appends [signing] to the configuration $1.
bench_signing_section() { cfg_signing hcgw-dev >>"$1"; }

# [signing] by kind $2 appended to the configuration $1: none (unsigned), ed25519 (the
# default key) or p256 (the dev PKI's retired P-256 key, hcgw-dev-previous). Fails on any
# other kind.
bench_signing() {
  case $2 in
    none) ;;
    ed25519) bench_signing_section "$1" ;;
    p256) cfg_signing hcgw-dev-previous >>"$1" ;;
    *) echo "signing is none, ed25519 or p256, not '$2'" >&2; return 2 ;;
  esac
}

# Starts a gateway with configuration $1, logging to $2.
bench_start_gateway() {
  "$BIN/hcgw" serve --config "$1" >"$2" 2>&1 &
  bench_started "gateway ($1)" "$2"
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
  # With the gateways' answer-signing key: /v1/lookup/signed is the signed floor.
  "$BIN/examples/bench-ceiling" "127.0.0.1:$1" "$PKI/gateways/hcgw-dev/cert.pem" "$PKI/gateways/hcgw-dev/key.pem" "$PKI/ca-bundle.pem" \
    "$PKI/signing/hcgw-dev/key.pem" "$PKI/signing/hcgw-dev/cert.pem" >"$OUT/ceiling.log" 2>&1 &
  bench_started ceiling "$OUT/ceiling.log"
}

# Waits (10 s at most) until the simulators all listen (`hcgw simulate` prints "ready"),
# every admin port given answers /readyz and the simulator on port $1 its stats, then checks
# that every process started is still running (a server that could not listen has exited,
# and another program may be answering on its port): fails otherwise, saying which and why.
bench_wait_ready() {
  local xz=$1; shift
  local i a ok=0
  for i in $(seq 100); do
    for a in "${PIDS[@]}"; do kill -0 "$a" 2>/dev/null || break 2; done
    ok=1
    grep -q '^ready' "$BENCH_SIM_LOG" 2>/dev/null || ok=0
    for a in "$@"; do ((ok)) && { curl -sf "http://127.0.0.1:$a/readyz" >/dev/null || ok=0; }; done
    ((ok)) && curl -sf "http://127.0.0.1:$xz/_sim/stats" >/dev/null && break
    ok=0
    sleep 0.1
  done
  bench_report_dead || return 1
  if ((!ok)); then
    echo "not ready after 10 s: the simulators ($BENCH_SIM_LOG), the admin ports $* (/readyz) or the simulator on $xz (/_sim/stats)" >&2
    return 1
  fi
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
