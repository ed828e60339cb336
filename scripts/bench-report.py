#!/usr/bin/env python3
"""Turns the raw results of scripts/bench.sh into a Markdown report: medians over the
rounds, ratios, and each target of issue 7 with whether it was met."""
import json
import os
import statistics
import sys
from datetime import datetime, timezone

out, rounds, smoke = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
CLK_TCK = 100
if os.path.exists(os.path.join(out, "clk_tck")):
    with open(os.path.join(out, "clk_tck")) as f:
        CLK_TCK = int(f.read())


def oha(name):
    runs = []
    for r in range(1, rounds + 1):
        with open(os.path.join(out, f"{name}-{r}.json")) as f:
            d = json.load(f)
        lat = d.get("latencyPercentiles", {})
        n = sum(d.get("statusCodeDistribution", {}).values())
        ticks_file = os.path.join(out, f"{name}-{r}.ticks")
        cpu_us = 0.0
        if n and os.path.exists(ticks_file):
            with open(ticks_file) as t:
                cpu_us = int(t.read()) * 1e6 / CLK_TCK / n
        runs.append({
            "cpu_us": cpu_us,
            "rps": d["summary"]["requestsPerSec"],
            "p50": (lat.get("p50") or 0) * 1000,
            "p99": (lat.get("p99") or 0) * 1000,
            "ok": d["summary"].get("successRate", 0),
        })
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def load(name):
    with open(os.path.join(out, name)) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def verdict(ok):
    return "met" if ok else "**missed**"


a = {n: oha(f"a-{n}") for n in ("hcgw", "nginx", "ceiling")}
a_log = oha("a-nginxlog")
# The signed floor: the ceiling signing each answer (examples/bench-ceiling.rs); absent in
# results of a harness before it.
a_floor = oha("a-floor") if os.path.exists(os.path.join(out, "a-floor-1.json")) else None
g_unsigned = oha("g-unsigned")
c = {n: oha(f"c-{n}") for n in ("hcgw", "nginx")}
b, d, f = load("b.json"), load("d.json"), load("f.json")
mem = {}
for name in sorted(os.listdir(out)):
    if name.startswith("e-"):
        e = load(name)
        mem[e["entries"]] = e

now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"# hcgw benchmark — {now}, {os.cpu_count()} cores{' (SMOKE RUN: durations too short to mean anything)' if smoke else ''}")
print()
print(f"Medians of {rounds} alternating round(s); simulators at a fixed 20 ms latency; every client presents a certificate (mTLS).")
print()
print("| measurement | hcgw | reference | ratio | target | verdict |")
print("|---|---|---|---|---|---|")
r_ng = a["hcgw"]["rps"] / a["nginx"]["rps"] if a["nginx"]["rps"] else 0
r_ce = a["hcgw"]["rps"] / a["ceiling"]["rps"] if a["ceiling"]["rps"] else 0
print(f"| (a) cached lookups, req/s (keep-alive) | {a['hcgw']['rps']:.0f} | nginx {a['nginx']['rps']:.0f} | {r_ng:.2f}× | ≥ 1.0× nginx | {verdict(r_ng >= 1.0)} |")
print(f"| (a) cached lookups, req/s | {a['hcgw']['rps']:.0f} | bare axum+rustls {a['ceiling']['rps']:.0f} | {r_ce:.2f}× | ≥ 0.7× ceiling | {verdict(r_ce >= 0.7)} |")
if a_floor:
    f_ng = a_floor["rps"] / a["nginx"]["rps"] if a["nginx"]["rps"] else 0
    f_ce = a_floor["rps"] / a["ceiling"]["rps"] if a["ceiling"]["rps"] else 0
    print(f"| (a) the signed floor (the ceiling + one Ed25519 signature per answer), req/s, for information | {a_floor['rps']:.0f} | nginx {a['nginx']['rps']:.0f} | {f_ng:.2f}× | | |")
    print(f"| (a) the signed floor, req/s, for information | {a_floor['rps']:.0f} | bare axum+rustls {a['ceiling']['rps']:.0f} | {f_ce:.2f}× | | |")
r_log = a["hcgw"]["rps"] / a_log["rps"] if a_log["rps"] else 0
print(f"| (a) cached lookups, req/s, for information | {a['hcgw']['rps']:.0f} | nginx with its default access log {a_log['rps']:.0f} | {r_log:.2f}× | | |")
print(f"| (a) cached lookups, p99 ms | {a['hcgw']['p99']:.2f} | nginx {a['nginx']['p99']:.2f} | {a['hcgw']['p99'] / a['nginx']['p99'] if a['nginx']['p99'] else 0:.2f}× | ≤ nginx | {verdict(a['hcgw']['p99'] <= a['nginx']['p99'])} |")
print(f"| (b) uncached, added p50 ms | {b['added_p50_ms']:.2f} | simulator p50 {b['simulator_p50_ms']:.2f} | | ≤ 1 ms | {verdict(b['added_p50_ms'] <= 1.0)} |")
print(f"| (b) uncached, added p99 ms | {b['added_p99_ms']:.2f} | simulator p99 {b['simulator_p99_ms']:.2f} | | ≤ 3 ms | {verdict(b['added_p99_ms'] <= 3.0)} |")
r_c = c["hcgw"]["rps"] / c["nginx"]["rps"] if c["nginx"]["rps"] else 0
print(f"| (c) new mTLS connections/s | {c['hcgw']['rps']:.0f} | nginx {c['nginx']['rps']:.0f} | {r_c:.2f}× | ≥ 1.0× nginx | {verdict(r_c >= 1.0)} |")
print(f"| (d) {d['concurrent']} concurrent identical cold lookups → upstream calls | {d['upstream_calls']} | | | exactly 1 | {verdict(d['upstream_calls'] == 1)} |")
for n, e in sorted(mem.items()):
    print(f"| (e) memory per cached entry at {n:,} entries | {e['bytes_per_entry']:.0f} B | | | ≤ 1 KiB | {verdict(e['bytes_per_entry'] <= 1024)} |")
print(f"| (f) {f['items']}-item batch, wall s | {f['wall_s']:.2f} | rate bound {f['rate_bound_s']:.2f} s | {f['ratio']:.2f}× | within 10% | {verdict(f['ratio'] <= 1.10 and f['answered'] == f['items'])} |")
r_sig = a["hcgw"]["rps"] / g_unsigned["rps"] if g_unsigned["rps"] else 0
print(f"| (g) cached lookups, answers signed, req/s | {a['hcgw']['rps']:.0f} | the same gateway unsigned {g_unsigned['rps']:.0f} | {r_sig:.2f}× | ≥ 0.95× unsigned | {verdict(r_sig >= 0.95)} |")
print(f"| (g) cached lookups, answers signed, p99 ms | {a['hcgw']['p99']:.2f} | unsigned {g_unsigned['p99']:.2f} | {a['hcgw']['p99'] / g_unsigned['p99'] if g_unsigned['p99'] else 0:.2f}× | | |")
print()
print("Raw: latency p50/p99 (ms) — " + ", ".join(f"{n} {v['p50']:.2f}/{v['p99']:.2f}" for n, v in [*a.items(), ("nginx with access log", a_log), *([("signed floor", a_floor)] if a_floor else [])]) + ".")
print()
print("Server CPU per request (µs; the server's user + system time over the oha run ÷ requests answered, median of the rounds; the load generator's own CPU not included): "
      + ", ".join(f"{n} {v['cpu_us']:.1f}" for n, v in [("hcgw signed", a["hcgw"]), ("hcgw unsigned", g_unsigned), ("nginx", a["nginx"]), ("nginx with access log", a_log), ("ceiling", a["ceiling"]), *([("signed floor", a_floor)] if a_floor else [])]) + ".")
print()
print("Command: `scripts/bench.sh` (ROUNDS, DURATION, CONC override the defaults).")
