#!/usr/bin/env python3
"""Turns the raw results of scripts/scale.sh into a Markdown report (stdout): medians over
the rounds, side by side with nginx and the bare ceiling where they can do the same. Checks
the invariants of every run (every answer a 200, no client error, the connections held,
cache hits where cached, the fill never asking the region, the audit trails intact); any
failure is listed in the report and makes the exit status 1.

usage: scale-report.py OUT ROUNDS SMOKE NGINX_VERSION"""
import glob
import json
import os
import sqlite3
import statistics
import sys
from datetime import datetime, timezone

out, rounds, smoke, nginx_version = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
failures = []


def read(name):
    with open(os.path.join(out, name)) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def oha_run(name):
    with open(os.path.join(out, f"{name}.json")) as f:
        d = json.load(f)
    lat = d.get("latencyPercentiles", {})
    codes = d.get("statusCodeDistribution", {})
    errors = d.get("errorDistribution", {})
    answered = sum(codes.values())
    if answered == 0 or set(codes) != {"200"}:
        failures.append(f"{name}: status codes {codes} (every answer must be 200)")
    # oha counts requests still in flight when the duration ends as aborted: not an error
    real = {k: v for k, v in errors.items() if "aborted due to deadline" not in k}
    if real:
        failures.append(f"{name}: client errors {real}")
    return {
        "rps": d["summary"]["requestsPerSec"],
        "p50": (lat.get("p50") or 0) * 1000,
        "p99": (lat.get("p99") or 0) * 1000,
    }


def steady(name, from_s):
    """p50/p99 (ms) of the requests of oha's database `name` sent from `from_s` seconds on,
    counted from when oha meant to send them (--latency-correction)."""
    db = sqlite3.connect(os.path.join(out, f"{name}.db"))
    sent = db.execute("select count(*) from oha where start >= ?", (from_s,)).fetchone()[0]
    lat = sorted(r[0] * 1000 for r in db.execute(
        "select end - coalesce(start_latency_correction, start) from oha where start >= ?", (from_s,)))
    db.close()
    if not lat:
        failures.append(f"{name}: no request after {from_s} s")
        return 0, 0, 0
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], sent / from_s


def med(runs):
    return {k: statistics.median(r[k] for r in runs) for k in runs[0] if not isinstance(runs[0][k], str)}


def oha(prefix):
    return med([oha_run(f"{prefix}-{r}") for r in range(1, rounds + 1)])


def ratio(a, b):
    return f"{a / b:.2f}×" if b else "–"


now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"# hcgw scale figures — {now}, {os.cpu_count()} cores"
      f"{' (SMOKE RUN: sizes too small to mean anything)' if smoke else ''}")
print()
print(f"Medians of {rounds} alternating round(s); every client presents a certificate (mTLS); "
      f"oha shares the cores with the servers. nginx: {nginx_version}, `proxy_cache`, no access log. "
      "hcgw: strict audit (`fsync = \"every_batch\"`, the production default), access log on, answers signed.")
print()

# (m) many connections
m = {}
for s in ("hcgw", "nginx"):
    runs = []
    for r in range(1, rounds + 1):
        o = oha_run(f"m-{s}-{r}")
        x = read(f"m-{s}-{r}.rss.json")
        if x["connections"] < 0.95 * x["wanted"]:
            failures.append(f"m-{s}-{r}: {x['connections']} connections held, {x['wanted']} wanted")
        held = max(x["connections"], 1)
        s50, s99, srate = steady(f"m-{s}-{r}", x["duration_s"] / 2)
        if srate < 0.9 * x["rate"]:
            failures.append(f"m-{s}-{r}: {srate:.0f} req/s in the second half, not the fixed {x['rate']}")
        o.update(kb_per_conn=(x["rss_during_kb"] - x["rss_before_kb"]) / held,
                 held=x["connections"], rss_mb=x["rss_during_kb"] / 1024, s50=s50, s99=s99, srate=srate)
        runs.append(o)
        wanted, rate = x["wanted"], x["rate"]
    m[s] = med(runs)
    # Memory freed after a round stays with the process (allocator), so later rounds start
    # higher: the per-connection figure is the first round's, on fresh processes.
    m[s]["kb_per_conn"] = runs[0]["kb_per_conn"]
    m[s]["kb_rounds"] = ", ".join(f"{r['kb_per_conn']:.1f}" for r in runs)
print(f"## {wanted:,} concurrent keep-alive mTLS connections at {rate:,} req/s")
print()
print("| measurement | hcgw | nginx | ratio |")
print("|---|---|---|---|")
print(f"| RSS per connection, KiB (first round) | {m['hcgw']['kb_per_conn']:.1f} | {m['nginx']['kb_per_conn']:.1f} | {ratio(m['hcgw']['kb_per_conn'], m['nginx']['kb_per_conn'])} |")
print(f"| RSS per connection, KiB, each round | {m['hcgw']['kb_rounds']} | {m['nginx']['kb_rounds']} | |")
print(f"| RSS with the connections open, MiB | {m['hcgw']['rss_mb']:.0f} | {m['nginx']['rss_mb']:.0f} (workers) | |")
print(f"| connections held (sampled) | {m['hcgw']['held']:.0f} | {m['nginx']['held']:.0f} | |")
print(f"| p50 ms, second half (connections open) | {m['hcgw']['s50']:.2f} | {m['nginx']['s50']:.2f} | {ratio(m['hcgw']['s50'], m['nginx']['s50'])} |")
print(f"| p99 ms, second half (connections open) | {m['hcgw']['s99']:.2f} | {m['nginx']['s99']:.2f} | {ratio(m['hcgw']['s99'], m['nginx']['s99'])} |")
print(f"| p99 ms, whole run (with the {wanted:,} handshakes) | {m['hcgw']['p99']:.2f} | {m['nginx']['p99']:.2f} | {ratio(m['hcgw']['p99'], m['nginx']['p99'])} |")
print(f"| achieved req/s, second half (whole run) | {m['hcgw']['srate']:.0f} ({m['hcgw']['rps']:.0f}) | {m['nginx']['srate']:.0f} ({m['nginx']['rps']:.0f}) | |")
print()
print("RSS per connection: (RSS with the connections open − RSS before) ÷ connections held "
      "(`ss` at two thirds of the run), from the first round, when the processes have not yet "
      "held the connections (memory freed after a round stays with them); gateway from `/proc/PID/status`, nginx summed over its workers. "
      "Latency counted from when oha meant to send (`--latency-correction`); every request kept "
      "(`--db-url`) for the second half's percentiles. The gateway's `[listener]` limits are raised "
      "for the run (`max_connections`, `max_connections_per_client`, a 60 s header-read timeout); "
      "nginx gets `worker_connections` to match and the gateway's accept queue (`backlog=1024`).")
print()

# (s) connection sweep
sweep = sorted({int(os.path.basename(p).split("-")[2]) for p in glob.glob(os.path.join(out, "s-hcgw-*-1.json"))})
print("## Cached-lookup throughput by connections (keep-alive)")
print()
print("| connections | hcgw req/s | nginx req/s | ceiling req/s | hcgw/nginx | hcgw/ceiling | p99 ms hcgw / nginx / ceiling |")
print("|---|---|---|---|---|---|---|")
for c in sweep:
    h, n, ce = (oha(f"s-{s}-{c}") for s in ("hcgw", "nginx", "ceiling"))
    print(f"| {c:,} | {h['rps']:.0f} | {n['rps']:.0f} | {ce['rps']:.0f} | {ratio(h['rps'], n['rps'])} | {ratio(h['rps'], ce['rps'])} | {h['p99']:.2f} / {n['p99']:.2f} / {ce['p99']:.2f} |")
print()

# (h) HTTP/2
alpn = {}
for s in ("hcgw", "nginx", "ceiling"):
    with open(os.path.join(out, f"h-{s}.alpn")) as f:
        alpn[s] = f.read().strip()
    if alpn[s] != "2":
        failures.append(f"h-{s}: curl --http2 negotiated HTTP/{alpn[s]}, not h2")
h = {s: oha(f"h-{s}") for s in ("hcgw", "nginx", "ceiling")}
with open(os.path.join(out, "h-streams")) as f:
    streams = int(f.read())
print(f"## HTTP/2: one connection, {streams} streams")
print()
print("| server | negotiated | req/s | p50 ms | p99 ms | hcgw ÷ this |")
print("|---|---|---|---|---|---|")
for s in ("hcgw", "nginx", "ceiling"):
    print(f"| {s} | HTTP/{alpn[s]} | {h[s]['rps']:.0f} | {h[s]['p50']:.2f} | {h[s]['p99']:.2f} | {ratio(h['hcgw']['rps'], h[s]['rps'])} |")
print()
print(f"oha `--http2 -c 1 -p {streams}`; the gateway allows "
      "`http2_max_concurrent_streams` (100 by default) per connection, nginx 128.")
print()

# (g) cache growth
sizes = sorted(int(os.path.basename(p)[len("g-fill-"):-len(".rss.json")]) for p in glob.glob(os.path.join(out, "g-fill-*.rss.json")))
print("## Cost by cache size (cached lookups spread uniformly over N subjects)")
print()
print("| entries N | fill: Redis write s | fill: gateway s (lookups/s) | RSS growth per entry (fill) | req/s over N | req/s, 1 subject | ratio | p99 ms over N | p99 ms, 1 subject |")
print("|---|---|---|---|---|---|---|---|---|")
for n in sizes:
    fill = read(f"g-fill-{n}.json")
    rss = read(f"g-fill-{n}.rss.json")
    if fill["failed"]:
        failures.append(f"g-fill-{n}: {fill['failed']} lookups not answered 200 from the cache")
    if fill["upstream_calls"]:
        failures.append(f"g-fill-{n}: the region was asked {fill['upstream_calls']} times during the fill")
    probe = read(f"g-probe-{n}.json")
    if probe["failed"] or probe["upstream_calls"]:
        failures.append(f"g-probe-{n}: {probe}")
    if float(rss["cache_entries"]) < n:
        failures.append(f"g-fill-{n}: the gateway holds {rss['cache_entries']} entries, {n} wanted")

    g, base = oha(f"g-{n}"), oha(f"g-base-{n}")
    sp = read(f"g-spread-{n}.json")
    if sp["cache_misses"] or sp["upstream_calls"]:
        failures.append(f"g-{n}: {sp['cache_misses']} cache misses, {sp['upstream_calls']} region calls during the spread runs")
    added = fill["n"] - fill["from"]  # entries the fill put in (RSS growth over them)
    per_entry = (rss["rss_after_kb"] - rss["rss_before_kb"]) * 1024 / added if added else 0
    print(f"| {n:,} | {fill['l2_write_s']:.1f} | {fill['fill_s']:.1f} ({added / fill['fill_s']:.0f}/s) | {per_entry:.0f} B | {g['rps']:.0f} | {base['rps']:.0f} | {ratio(g['rps'], base['rps'])} | {g['p99']:.2f} | {base['p99']:.2f} |")
print()
print("The gateway under test is the one above plus the Redis tier and a green TTL of 3600 s. "
      "The fill writes each entry to Redis with the gateway's own writer (`RedisTier::put`, sealed "
      "with the entry key), as another replica would, because asking the region at its published "
      "rate (Xuzhou: 100/s) would take hours for a million; each subject is then looked up once "
      "through the gateway, which takes it from Redis into its own cache (the region is never "
      "asked: checked). The load is oha `-Z` over the N lookup bodies (each request draws one at "
      "random; no cache miss, no region call during the runs: checked against the gateway's "
      "`hcgw_cache_misses_total` and the simulator's count); the 1-subject baseline runs on the "
      "same gateway in the same rounds. Every lookup, this gateway's "
      "included, also takes its client quota from Redis (the shared tier on), the same at every N.")
print()

# (b) batch size
bsizes = sorted({int(os.path.basename(p).split("-")[1]) for p in glob.glob(os.path.join(out, "b-*-1.json"))})
check = read("batch-check.json")
results = check.get("results", [])
not_hit = [r for r in results if not (r.get("status") and (r.get("cache") or {}).get("hit") is True)]
if len(results) != max(bsizes) or not_hit:
    failures.append(f"batch warm-up: {len(results)} results, {len(not_hit)} not answered from the cache")
print("## Cost by batch size (`/v1/lookup/batch`, cached items)")
print()
print("| items | batches/s | items/s | p50 ms | p99 ms | µs per item |")
print("|---|---|---|---|---|---|")
for n in bsizes:
    b = oha(f"b-{n}")
    print(f"| {n:,} | {b['rps']:.0f} | {b['rps'] * n:.0f} | {b['p50']:.2f} | {b['p99']:.2f} | {1e6 / (b['rps'] * n) if b['rps'] else 0:.1f} |")
print()
print("µs per item: wall time per item at the measured throughput, 10⁶ ÷ (batches/s × items). "
      "nginx has no batch endpoint.")
print()

# audit
print("## Audit trails")
print()
for a in ("audit", "audit-cache"):
    with open(os.path.join(out, f"{a}.verify")) as f:
        v = f.read().strip().splitlines()
    with open(os.path.join(out, f"{a}.records")) as f:
        n = int(f.read().strip())
    ok = bool(v) and v[-1] == "ok"
    if not ok:
        failures.append(f"{a}: hcgw audit verify failed: {' '.join(v[-3:])}")
    print(f"- `{a}`: {n:,} records, `hcgw audit verify` {'intact' if ok else '**FAILED**'}: {v[0] if v else ''}")
print()
print("## Checks")
print()
if failures:
    for f in failures:
        print(f"- **failed**: {f}")
else:
    print("Every answer 200 with no client error, the connections held, every spread and batch "
          "answer from the cache, the fill never asking the region, the audit trails intact.")
print()
print("Command: `scripts/scale.sh` (ROUNDS, DURATION, CONNS, RATE, MANY_DURATION, SWEEP, H2_STREAMS, "
      "CACHE_SIZES, SPREAD_CONC, BATCH_SIZES, BATCH_CONC override the defaults).")
for f in failures:
    print(f"scale: {f}", file=sys.stderr)
sys.exit(1 if failures else 0)
