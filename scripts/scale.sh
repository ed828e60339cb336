#!/usr/bin/env bash
# Scale figures (issue 16 item 2), each side by side with nginx where nginx can do the
# same, on the setup of scripts/bench.sh (scripts/bench-lib.sh: simulators, the gateway with
# [signing], nginx as mTLS caching proxy, the bare axum+rustls ceiling):
#  (m) CONNS (10,000) concurrent keep-alive mTLS connections at a fixed request rate
#      (oha -c CONNS -q RATE): RSS per connection (RSS with them open minus RSS before,
#      divided by the connections the server holds; nginx summed over its workers) and p99;
#  (s) cached-lookup throughput at 1, 64 and 1,000 connections: hcgw, nginx, ceiling;
#  (h) HTTP/2, one connection, H2_STREAMS streams (oha --http2 -c 1 -p N): the same three;
#  (g) how cost grows with the cache: a second gateway (the same, plus the Redis tier it
#      needs for the fill, green TTL 3600 s) filled with 10k, 100k, 1M entries
#      (examples/bench-driver.rs spread-fill: see there why through Redis), then cached
#      lookups spread uniformly over the N subjects against a one-subject baseline on the
#      same gateway in the same rounds (bench-driver spread);
#  (b) how cost grows with batch size: /v1/lookup/batch of 10, 100, 1,000 cached items.
# Medians of ROUNDS alternating rounds. Every answer must be a 200 (cache hits where
# cached), no client error, the connections held, the fill never asking the region, the
# audit trails intact: otherwise the report says what failed and the script exits 1.
# Output: bench-results/<date>-scale.md (scripts/scale-report.py).
#
#   scripts/scale.sh           # full run (release build; ~25 min on 2 cores)
#   scripts/scale.sh --smoke   # < 60 s, debug build, tiny sizes, report in target/scale/
# Overrides: ROUNDS DURATION CONNS RATE MANY_DURATION SWEEP H2_STREAMS CACHE_SIZES
# SPREAD_CONC BATCH_SIZES BATCH_CONC.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SMOKE=0
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    *) echo "usage: scripts/scale.sh [--smoke]" >&2; exit 2 ;;
  esac
done
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-10000}
RATE=${RATE:-2000}
MANY_DURATION=${MANY_DURATION:-60}
SWEEP=${SWEEP:-"1 64 1000"}
H2_STREAMS=${H2_STREAMS:-100}
CACHE_SIZES=${CACHE_SIZES:-"10000 100000 1000000"}
SPREAD_CONC=${SPREAD_CONC:-64}
BATCH_SIZES=${BATCH_SIZES:-"10 100 1000"}
BATCH_CONC=${BATCH_CONC:-16}
PROFILE=release
if ((SMOKE)); then
  ROUNDS=1 DURATION=1s CONNS=200 RATE=200 MANY_DURATION=4 SWEEP="1 16" H2_STREAMS=10
  CACHE_SIZES="1000" SPREAD_CONC=8 BATCH_SIZES="10 100" BATCH_CONC=4 PROFILE=dev
fi

# File descriptors: oha and the server under test each hold CONNS sockets (plus their
# files, upstream and admin connections).
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < CONNS + 500)); then
  echo "scale: ulimit -n is at most $(ulimit -n); $((CONNS + 500)) needed for CONNS=$CONNS" >&2
  exit 1
fi

scripts/install-bench-deps.sh
cargo build --profile "$PROFILE" --quiet --bin hcgw --example bench-ceiling --example bench-driver
BIN=$ROOT/target/$([[ $PROFILE == dev ]] && echo debug || echo release)
OUT=$ROOT/target/scale
rm -rf "$OUT"; mkdir -p "$OUT"
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_lock
bench_pki "$ROOT/target/scale-pki"

# Ports 23000-23999: below the kernel's ephemeral range (scripts/faults.sh).
SIM_BASE=23101; XZ_PORT=$((SIM_BASE + 3)); GW_PORT=23443; ADMIN_PORT=23090
NGINX_PORT=23444; CEIL_PORT=23445; NGINX_H2_PORT=23446; CACHE_PORT=23447; CACHE_ADMIN_PORT=23091
REDIS_PORT=23379
bench_wait_ports_free $(seq $SIM_BASE $((SIM_BASE + 7))) $GW_PORT $ADMIN_PORT $NGINX_PORT $CEIL_PORT $NGINX_H2_PORT \
  $CACHE_PORT $CACHE_ADMIN_PORT $REDIS_PORT
bench_init

# No added latency: nothing here measures the region, and the batch warm-up is faster.
bench_start_sim $SIM_BASE 0 20000
redis-server --port $REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no >"$OUT/redis.log" 2>&1 &
bench_started redis "$OUT/redis.log"

# The gateway's connection limits (docs/configuration: [listener]) raised for CONNS
# connections of one client; an idle keep-alive connection may wait a minute between
# requests (at RATE over CONNS connections each waits CONNS/RATE s on average).
LISTENER="max_connections = $((CONNS + 2000))
max_connections_per_client = $((CONNS + 1000))
header_read_timeout_ms = 60000
idle_timeout_ms = 120000"
# Green answers are kept an hour (the longest allowed; 60 s by default) so that the cached
# subjects of every measurement stay cached through all rounds: the TTL is not on the hot path.
TTL="[regions.xuzhou.ttl]
green_s = 3600"
bench_gateway_config "$OUT/hcgw.toml" $GW_PORT $ADMIN_PORT "$OUT/audit" true $XZ_PORT "$LISTENER" "$TTL"
bench_signing_section "$OUT/hcgw.toml"
# (g)'s gateway: the same with the Redis tier (only to fill it).
bench_gateway_config "$OUT/hcgw-cache.toml" $CACHE_PORT $CACHE_ADMIN_PORT "$OUT/audit-cache" true $XZ_PORT "$LISTENER" \
  "$TTL
$(cfg_redis $REDIS_PORT)"
sed -i 's/hcgw-bench"/hcgw-bench-cache"/' "$OUT/hcgw-cache.toml"
bench_signing_section "$OUT/hcgw-cache.toml"
bench_start_gateway "$OUT/hcgw.toml" "$OUT/hcgw.log"
GW_PID=${PIDS[-1]}
bench_start_gateway "$OUT/hcgw-cache.toml" "$OUT/hcgw-cache.log"
CACHE_PID=${PIDS[-1]}

# nginx: room for CONNS connections, and the accept queue of the gateway's listener (tokio's
# 1024; nginx's default is 511).
API_KEY=$(cat "$PKI/secrets/xuzhou_api_key")
bench_start_nginx $XZ_PORT $((CONNS + 2000)) "worker_rlimit_nofile $(ulimit -n);
" "$(nginx_server "$NGINX_PORT" "access_log off;" " backlog=1024")
$(nginx_server "$NGINX_H2_PORT" "access_log off;" " http2")"
bench_start_ceiling $CEIL_PORT
bench_wait_ready $XZ_PORT $ADMIN_PORT $CACHE_ADMIN_PORT
for i in $(seq 100); do redis-cli -p $REDIS_PORT ping >/dev/null 2>&1 && break; sleep 0.1; done

bench_subject $XZ_PORT
curl -sf "${TLS[@]}" -H 'content-type: application/json' -d "$BODY" "https://localhost:$GW_PORT/v1/lookup" >"$OUT/warm-hcgw.json"
curl -sf "${TLS[@]}" "https://localhost:$NGINX_PORT/xzjkb/v1/qr/$TOKEN/status" >"$OUT/warm-nginx.json"
curl -sf "${TLS[@]}" "https://localhost:$NGINX_H2_PORT/xzjkb/v1/qr/$TOKEN/status" >/dev/null

GW_URL=(-m POST -H 'content-type: application/json' -d "$BODY" "https://localhost:$GW_PORT/v1/lookup")
CEIL_URL=(-m POST -H 'content-type: application/json' -d "$BODY" "https://localhost:$CEIL_PORT/v1/lookup")
# Over HTTP/2 the ceiling must read the request body (examples/bench-ceiling.rs).
CEIL_H2_URL=(-m POST -H 'content-type: application/json' -d "$BODY" "https://localhost:$CEIL_PORT/v1/lookup/read")
NGINX_URL=("https://localhost:$NGINX_PORT/xzjkb/v1/qr/$TOKEN/status")
NGINX_H2_URL=("https://localhost:$NGINX_H2_PORT/xzjkb/v1/qr/$TOKEN/status")

run_oha() { # name, oha args...
  local name=$1; shift
  oha --no-tui --output-format json "${TLS[@]}" "$@" >"$OUT/$name.json"
}
# Resident set (kB) of a process; of nginx: summed over its workers.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
nginx_rss_kb() {
  local master total=0 p
  master=$(cat "$OUT/nginx.pid")
  for p in $(pgrep -P "$master"); do total=$((total + $(rss_kb "$p"))); done
  echo $total
}
established() { ss -Htn state established "( sport = :$1 )" | wc -l; }

# (m) CONNS connections at RATE req/s; RSS and the connections held sampled at two thirds
# of the run, when every connection has been opened (each gets a request every CONNS/RATE s).
# The first request of each connection waits for its handshake, all CONNS at once: every
# request is kept (--db-url) so that the report gives p99 over the second half of the run
# (connections open) besides the whole run's; latency counted from when oha meant to send
# (--latency-correction), connections given 60 s to be accepted.
many() { # name, port, rss function, oha target...
  local name=$1 port=$2 rss=$3; shift 3
  local before during held
  before=$($rss)
  oha --no-tui --output-format json "${TLS[@]}" -z "${MANY_DURATION}s" -c "$CONNS" -q "$RATE" --latency-correction \
    --connect-timeout 60s --db-url "$OUT/$name.db" "$@" >"$OUT/$name.json" &
  local oha_pid=$!
  sleep $((MANY_DURATION * 2 / 3))
  during=$($rss); held=$(established "$port")
  wait "$oha_pid"
  printf '{"rss_before_kb": %s, "rss_during_kb": %s, "connections": %s, "wanted": %s, "rate": %s, "duration_s": %s}\n' \
    "$before" "$during" "$held" "$CONNS" "$RATE" "$MANY_DURATION" >"$OUT/$name.rss.json"
}
gw_rss() { rss_kb "$GW_PID"; }
for r in $(seq "$ROUNDS"); do
  many "m-hcgw-$r" $GW_PORT gw_rss "${GW_URL[@]}"
  sleep 2
  many "m-nginx-$r" $NGINX_PORT nginx_rss_kb "${NGINX_URL[@]}"
  sleep 2
done

# (s) throughput at 1, 64, 1,000 connections.
for r in $(seq "$ROUNDS"); do
  for c in $SWEEP; do
    run_oha "s-hcgw-$c-$r" -z "$DURATION" -c "$c" "${GW_URL[@]}"
    run_oha "s-nginx-$c-$r" -z "$DURATION" -c "$c" "${NGINX_URL[@]}"
    run_oha "s-ceiling-$c-$r" -z "$DURATION" -c "$c" "${CEIL_URL[@]}"
  done
done

# (h) HTTP/2: the protocol each server negotiates (ALPN), then one connection, many streams.
for s in hcgw nginx ceiling; do
  case $s in
    hcgw) url="https://localhost:$GW_PORT/v1/lookup"; data=(-H 'content-type: application/json' -d "$BODY") ;;
    nginx) url=${NGINX_H2_URL[0]}; data=() ;;
    ceiling) url=${CEIL_H2_URL[-1]}; data=(-H 'content-type: application/json' -d "$BODY") ;;
  esac
  curl -s --http2 -o /dev/null -w '%{http_version}\n' "${TLS[@]}" "${data[@]}" "$url" >"$OUT/h-$s.alpn"
done
echo "$H2_STREAMS" >"$OUT/h-streams"
for r in $(seq "$ROUNDS"); do
  run_oha "h-hcgw-$r" --http2 -c 1 -p "$H2_STREAMS" -z "$DURATION" "${GW_URL[@]}"
  run_oha "h-nginx-$r" --http2 -c 1 -p "$H2_STREAMS" -z "$DURATION" "${NGINX_H2_URL[@]}"
  run_oha "h-ceiling-$r" --http2 -c 1 -p "$H2_STREAMS" -z "$DURATION" "${CEIL_H2_URL[@]}"
done

# (b) batches of cached items: the largest batch asked once (uncached: at the region's
# rate), then each size's items checked to be cached hits.
python3 - "$OUT" "$XZ_PORT" $BATCH_SIZES <<'PY'
import json, sys, urllib.request
out, port, sizes = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]
subs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/subjects?offset=10000&limit={3 * max(sizes)}"))
# green ones only: other colours are cached for 10 to 30 s
items = [{"region": "xuzhou", "subject": {"qr": s["qr"]}} for s in subs
         if s["fate"] == "active" and s["intended_by_qr"]["color"] == "green" and not s["intended_by_qr"].get("error")]
assert len(items) >= max(sizes), "not enough active subjects"
for n in sizes:
    with open(f"{out}/batch-{n}.body", "w") as f:
        json.dump({"items": items[:n]}, f)
PY
BMAX=$(for n in $BATCH_SIZES; do echo "$n"; done | sort -n | tail -1)
curl -sf "${TLS[@]}" -H 'content-type: application/json' --data-binary "@$OUT/batch-$BMAX.body" \
  "https://localhost:$GW_PORT/v1/lookup/batch" >"$OUT/batch-warm.json"
curl -sf "${TLS[@]}" -H 'content-type: application/json' --data-binary "@$OUT/batch-$BMAX.body" \
  "https://localhost:$GW_PORT/v1/lookup/batch" >"$OUT/batch-check.json"
for r in $(seq "$ROUNDS"); do
  for n in $BATCH_SIZES; do
    run_oha "b-$n-$r" -z "$DURATION" -c "$BATCH_CONC" -m POST -H 'content-type: application/json' \
      -D "$OUT/batch-$n.body" "https://localhost:$GW_PORT/v1/lookup/batch"
  done
done

# (g) the cache-growth gateway, filled step by step (10k, then up to 100k, then 1M).
CACHE_GW="https://localhost:$CACHE_PORT"; SIM="http://127.0.0.1:$XZ_PORT"
export BENCH_REDIS="redis://127.0.0.1:$REDIS_PORT"
metric() { curl -sf "http://127.0.0.1:$CACHE_ADMIN_PORT/metrics" | awk -v m="$1" '$1 == m {v = $2} END {print v + 0}'; }
misses() { metric 'hcgw_cache_misses_total{region="xuzhou"}'; }
sim_requests() { curl -sf "$SIM/_sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }
"$BIN/examples/bench-driver" spread-fill "$CACHE_GW" "$SIM" 0 1 >"$OUT/g-fill-1.json"
"$BIN/examples/bench-driver" spread-bodies 1 >"$OUT/spread-1.lines"
prev=1
for n in $CACHE_SIZES; do
  before=$(rss_kb "$CACHE_PID")
  "$BIN/examples/bench-driver" spread-fill "$CACHE_GW" "$SIM" "$prev" "$n" >"$OUT/g-fill-$n.json"
  sleep 1
  after=$(rss_kb "$CACHE_PID")
  "$BIN/examples/bench-driver" spread-bodies "$n" >"$OUT/spread-$n.lines"
  # Cached lookups of a subject drawn at random (oha -Z) from the N, against the
  # one-subject baseline; neither may miss the cache nor ask the region.
  m0=$(misses); s0=$(sim_requests)
  for r in $(seq "$ROUNDS"); do
    run_oha "g-base-$n-$r" -z "$DURATION" -c "$SPREAD_CONC" -m POST -H 'content-type: application/json' -Z "$OUT/spread-1.lines" "$CACHE_GW/v1/lookup"
    run_oha "g-$n-$r" -z "$DURATION" -c "$SPREAD_CONC" -m POST -H 'content-type: application/json' -Z "$OUT/spread-$n.lines" "$CACHE_GW/v1/lookup"
  done
  printf '{"cache_misses": %s, "upstream_calls": %s}\n' "$(($(misses) - m0))" "$(($(sim_requests) - s0))" >"$OUT/g-spread-$n.json"
  # The entries held: the gauge is set at each insert from the cache's count, which is
  # approximate until its housekeeping has run (the reads above); one more insert (subject
  # N, a fill of one) reads it after that.
  "$BIN/examples/bench-driver" spread-fill "$CACHE_GW" "$SIM" "$n" $((n + 1)) >"$OUT/g-probe-$n.json"
  printf '{"rss_before_kb": %s, "rss_after_kb": %s, "cache_entries": %s}\n' \
    "$before" "$after" "$(metric hcgw_cache_entries)" >"$OUT/g-fill-$n.rss.json"
  prev=$((n + 1))
done

# The audit trails: every chain and signed tree head intact.
for a in audit audit-cache; do
  # The signed tree heads' signatures too, once a checkpoint has been written.
  KEY=(); [[ -s $OUT/$a/tree-heads.jsonl ]] && KEY=(--key "$PKI/signing/hcgw-dev/cert.pem")
  if "$BIN/hcgw" audit verify "${KEY[@]}" "$OUT/$a" >"$OUT/$a.verify" 2>&1; then echo ok >>"$OUT/$a.verify"; fi
  cat "$OUT/$a"/audit-*.jsonl | wc -l >"$OUT/$a.records"
done

if ((SMOKE)); then REPORT=$OUT/scale-smoke.md; else
  mkdir -p bench-results
  REPORT=bench-results/$(date -u +%Y-%m-%d)-scale.md
  # A second run on the same day keeps the first report.
  [[ -e $REPORT ]] && REPORT=bench-results/$(date -u +%Y-%m-%d-%H%M)-scale.md
fi
status=0
python3 scripts/scale-report.py "$OUT" "$ROUNDS" "$SMOKE" "$(nginx -v 2>&1)" >"$REPORT" || status=$?
cat "$REPORT"
echo "report: $REPORT"
exit $status
