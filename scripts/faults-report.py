#!/usr/bin/env python3
"""The report of scripts/faults.sh: reads its run directory (samples.jsonl from
`bench-driver steady`, events.jsonl, circuits.log, the audit trails), prints the Markdown
report and exits 1 when a criterion fails (each one listed in the verdict column).

Criteria per fault (periods: baseline, fault, recovery, by the send time of each request):
- others: the series the fault does not concern, pooled: p99 within ±10% of the baseline
  or --p99-floor-ms (full run only), error rate within ±10% or --err-floor (always);
- affected: the fault had its effect (error rate ≥ 0.5 during it); with a breaker, it opened
  on both gateways during the fault, and the requests sent after it opened failed fast
  (p99 ≤ a quarter of the deadline; smoke: p50, its few requests make p99 a probe's);
- recovery: the first window after the fault was removed whose error rate (and, full run,
  median latency: ≤ 1.25× the baseline's or + --p99-floor-ms; a window's few dozen requests
  make its p99 their maximum) is back to the baseline; none before the end of the recovery
  period fails;
- audit: no 2xx answer without a receipt; every receipt is in its gateway's trail with the
  same hash, and every peer receipt a forwarding record keeps is in the peer's trail; no
  record without a receipt except while A's disk was full (strict mode may over-record a
  refused request, never under-record a served one); `hcgw audit verify` passed.
"""
import argparse
import bisect
import datetime
import glob
import hashlib
import json
import os
import re
import sys


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[int(round((len(v) - 1) * p))]


def fmt_ms(v):
    return "–" if v is None else f"{v:.1f}"


def fmt_err(v):
    return "–" if v is None else f"{100 * v:.1f}%"


def stats(samples):
    lat = [s["ms"] for s in samples]
    n = len(samples)
    err = sum(1 for s in samples if not 200 <= s["status"] < 300)
    return {"n": n, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "err": err / n if n else None}


def load_trail(d):
    """seq -> (sha256 of the line, record) for every audit-*.jsonl line of the trail."""
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "audit-*.jsonl"))):
        with open(f, "rb") as fh:
            for line in fh:
                line = line.rstrip(b"\n")
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # verify reports it
                out[rec["seq"]] = (hashlib.sha256(line).hexdigest(), rec)
    return out


def rfc3339_ms(t):
    t = re.sub(r"(\.\d{6})\d*", r"\1", t.replace("Z", "+00:00"))
    return int(datetime.datetime.fromisoformat(t).timestamp() * 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", type=int, default=0)
    ap.add_argument("--verify-ok", type=int, required=True)
    ap.add_argument("--disk-run", type=int, default=1)
    ap.add_argument("--deadline-ms", type=float, required=True)
    ap.add_argument("--window-ms", type=int, default=1000)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--periods", required=True)
    ap.add_argument("--p99-floor-ms", type=float, default=5.0)
    ap.add_argument("--err-floor", type=float, default=0.01)
    ap.add_argument("--trail", action="append", default=[])
    a = ap.parse_args()
    smoke = bool(a.smoke)
    err_floor = max(a.err_floor, 0.05) if smoke else a.err_floor
    out = a.out

    samples = [json.loads(l) for l in open(os.path.join(out, "samples.jsonl")) if l.strip()]
    samples.sort(key=lambda s: s["t"])
    times = [s["t"] for s in samples]
    events = [json.loads(l) for l in open(os.path.join(out, "events.jsonl")) if l.strip()]
    plan = json.load(open(os.path.join(out, "plan.json")))
    all_series = sorted({s["series"] for s in samples})
    problems_global = []

    def between(t0, t1, series=None):
        i, j = bisect.bisect_left(times, t0), bisect.bisect_left(times, t1)
        return [s for s in samples[i:j] if series is None or s["series"] in series]

    # Circuit-open observations: (ms, gateway, target).
    opens = []
    for line in open(os.path.join(out, "circuits.log")):
        m = re.match(r'(\d+) (\w) hcgw_circuit_state\{(.*)\} (\S+)', line.strip())
        if not m or float(m.group(4)) != 1:
            continue
        tm = re.search(r'target="([^"]*)"', m.group(3))
        if tm:
            opens.append((int(m.group(1)), m.group(2), tm.group(1)))

    # Trails and receipts.
    trails = {}
    for spec in a.trail:
        name, d = spec.split("=", 1)
        trails[name] = load_trail(d)
    lost = []
    seen = {g: set() for g in trails}
    for s in samples:
        if s.get("seq") is None:
            continue
        g = s["series"].split("/")[0]
        seen[g].add(s["seq"])
        got = trails.get(g, {}).get(s["seq"])
        if got is None or got[0] != s["hash"]:
            lost.append(s)
    unaudited = [s for s in samples if 200 <= s["status"] < 300 and s.get("seq") is None]
    peer_receipts, peer_lost = 0, 0
    for g in ("A", "B"):
        for _, rec in trails.get(g, {}).values():
            r = (rec.get("peer_answer") or {}).get("receipt")
            if r:
                peer_receipts += 1
                got = trails.get("P", {}).get(r["seq"])
                if got is None or got[0] != r["hash"]:
                    peer_lost += 1
    disk_windows = [(e["start"], e["recover_end"]) for e in events if e["fault"] == "disk"]
    extras_allowed, extras_bad = 0, []
    for g in ("A", "B"):
        for seq, (_, rec) in trails.get(g, {}).items():
            if seq in seen[g]:
                continue
            t = rfc3339_ms(rec["time"])
            if g == "A" and any(t0 - 1000 <= t <= t1 for t0, t1 in disk_windows):
                extras_allowed += 1
            else:
                extras_bad.append((g, seq, rec.get("time"), rec.get("region"), rec.get("error")))

    if unaudited:
        problems_global.append(f"{len(unaudited)} 2xx answers without an audit receipt")
    if lost:
        problems_global.append(f"{len(lost)} receipts not found in their trail")
    if peer_lost:
        problems_global.append(f"{peer_lost} peer receipts not found in the peer's trail")
    if extras_bad:
        problems_global.append(f"{len(extras_bad)} records without an answered request, outside the disk-full fault")
    if not a.verify_ok:
        problems_global.append("hcgw audit verify failed")
    expected = a.rate * plan["duration_s"] * len(plan["gateways"]) * len(plan["regions"])
    if len(samples) < 0.8 * expected:
        problems_global.append(f"the load sent {len(samples)} requests, {expected:.0f} planned")
    if not events:
        problems_global.append("no fault was run")

    rows, details, any_fail = [], [], bool(problems_global)
    W = a.window_ms
    for e in events:
        f, affected = e["fault"], set(e["affected"])
        others = [s for s in all_series if s not in affected]
        fails, notes = [], []
        if e["extra"].get("not_run"):
            rows.append(f"| {f} | not run: {e['extra']['not_run']} | | | | | | | | not run |")
            continue
        ob, od = stats(between(e["base_start"], e["start"], others)), stats(between(e["start"], e["end"], others))
        if od["n"] == 0 or ob["n"] == 0:
            fails.append("no requests of the other series")
        else:
            if not smoke and abs(od["p99"] - ob["p99"]) > max(0.10 * ob["p99"], a.p99_floor_ms):
                fails.append(f"others' p99 {ob['p99']:.1f}→{od['p99']:.1f} ms")
            if abs(od["err"] - ob["err"]) > max(0.10 * ob["err"], err_floor):
                fails.append(f"others' error rate {fmt_err(ob['err'])}→{fmt_err(od['err'])}")
        ad = stats(between(e["start"], e["end"], affected)) if affected else None
        if ad is not None and (ad["n"] == 0 or ad["err"] < 0.5):
            fails.append(f"the fault had no effect (affected error rate {fmt_err(ad['err'])})")
        codes = {}
        for s in between(e["start"], e["end"], affected):
            codes[s["code"]] = codes.get(s["code"], 0) + 1
        if codes:
            notes.append("affected answers during the fault: " + ", ".join(f"{k} {v}" for k, v in sorted(codes.items())))
        if f == "disk" and not codes.get("audit_unavailable"):
            fails.append("no 503 audit_unavailable while the disk was full")
        opened = "–"
        if e["breaker"]:
            firsts = {}
            for t, g, target in opens:
                if target == e["breaker"] and e["start"] <= t < e["end"] and g not in firsts:
                    firsts[g] = t
            if set(firsts) != {"A", "B"}:
                fails.append(f"breaker {e['breaker']} did not open on both gateways (opened on: {sorted(firsts) or 'none'})")
            else:
                opened = f"{(max(firsts.values()) - e['start']) / 1000:.1f}"
                after = [s for s in between(e["start"], e["end"], affected) if s["t"] >= firsts[s["series"][0]]]
                fa = stats(after)
                fast_p, label = (fa["p50"], "p50") if smoke else (fa["p99"], "p99")
                notes.append(f"affected after the breaker opened: {fa['n']} requests, p50 {fmt_ms(fa['p50'])} ms, p99 {fmt_ms(fa['p99'])} ms")
                if fa["n"] == 0:
                    fails.append("no request after the breaker opened")
                elif fast_p > 0.25 * a.deadline_ms:
                    fails.append(f"not failing fast after the breaker opened ({label} {fast_p:.0f} ms, deadline {a.deadline_ms:.0f} ms)")
        # Recovery: the first window after removal back to the baseline.
        watch = affected or set(all_series)
        base = stats(between(e["base_start"], e["start"], watch))
        recovery = None
        t = e["end"]
        while t + W <= e["recover_end"] + 1 and base["n"]:
            w = stats(between(t, t + W, watch))
            ok = w["n"] > 0 and w["err"] <= base["err"] + max(0.10 * base["err"], err_floor)
            if ok and not smoke:
                # The median: a window holds a few dozen requests, whose p99 is their maximum.
                ok = w["p50"] <= max(1.25 * base["p50"], base["p50"] + a.p99_floor_ms)
            if ok:
                recovery = (t - e["end"]) / 1000
                break
            t += W
        if recovery is None:
            fails.append("not back to the baseline before the end of the recovery period")
        if f == "crl":
            x = e["extra"]
            want = {"probe_before": "accepted", "probe_newer_crl": "accepted", "probe_revoked": "refused", "probe_restored": "accepted"}
            for k, v in want.items():
                if x.get(k) != v:
                    fails.append(f"platform-guangdong {k.removeprefix('probe_')}: {x.get(k)} (expected {v})")
            notes.append("platform-guangdong's handshake: " + ", ".join(f"{k.removeprefix('probe_')} {x.get(k)}" for k in want))
        if f == "disk" and "free_bytes_during" in e["extra"]:
            notes.append(f"free bytes on A's audit filesystem while full: {e['extra']['free_bytes_during']}")
        win = (e["base_start"], e["recover_end"])
        un = sum(1 for s in unaudited if win[0] <= s["t"] < win[1])
        lo = sum(1 for s in lost if win[0] <= s["t"] < win[1])
        if un:
            fails.append(f"{un} unaudited answers")
        if lo:
            fails.append(f"{lo} lost records")
        any_fail |= bool(fails)
        aff = ", ".join(sorted(affected)) if affected else "none"
        aff_fig = f"{fmt_ms(ad['p99'])} ms / {fmt_err(ad['err'])}" if ad else "–"
        verdict = "pass" if not fails else "FAIL: " + "; ".join(fails)
        rows.append(
            f"| {f} | {aff} | {aff_fig} | {fmt_ms(ob['p99'])} → {fmt_ms(od['p99'])} | {fmt_err(ob['err'])} → {fmt_err(od['err'])} "
            f"| {opened} | {'–' if recovery is None else f'{recovery:.0f}'} | {un} | {lo} | {verdict} |"
        )
        if notes:
            details.append(f"- **{f}**: " + "; ".join(notes))

    periods = a.periods.split(",")
    print(f"# Faults under load ({'smoke run, figures mean nothing' if smoke else 'full run'}), {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print(f"`scripts/faults.sh{' --smoke' if smoke else ''}`: gateways A and B (shared Redis tier) and the peer P "
          f"(hangzhou via P), answer signing and strict audit on all three. Open-loop load: {a.rate:g} lookups/s per "
          f"series (gateway × region: suzhou, suishen, xuzhou, huzhou, hangzhou), each of a subject not asked before; "
          f"periods baseline / fault / recovery {periods[0]} / {periods[1]} / {periods[2]} s; deadline (the gateway's "
          f"timeout) {a.deadline_ms:.0f} ms; windows of {W} ms. {len(samples)} requests in all.\n")
    print("| fault | affected series | affected p99 / err during | others' p99 ms before → during | others' err before → during "
          "| breaker opened after (s) | recovery (s) | unaudited answers | lost records | verdict |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    print()
    print(f"Tolerances: others' p99 ±10% or ±{a.p99_floor_ms:g} ms, whichever is larger"
          f"{' (not checked in a smoke run)' if smoke else ''}; error rate ±10% or ±{100 * err_floor:g} points. "
          "Fail fast: after the breaker opened, " + ("p50" if smoke else "p99") + f" ≤ {0.25 * a.deadline_ms:.0f} ms. "
          "Recovery: the start of the first window after the fault was removed that is back to the baseline "
          "(error rate" + ("" if smoke else f", and p50 ≤ 1.25× the baseline's or + {a.p99_floor_ms:g} ms")
          + "; 0 = the first window already was); the breakers' `open_s` bounds it for region faults.\n")
    load = os.path.join(out, "loadavg.txt")
    if os.path.exists(load):
        marks = [l.split()[:4] for l in open(load).read().splitlines() if l.strip()]
        print("Machine load averages (1/5/15 min) at the start and the end of the load: "
              + "; ".join(f"{m[0]} {m[1]}/{m[2]}/{m[3]}" for m in marks)
              + f", on {os.cpu_count()} cores. The others' p99 compares like with like only on an otherwise idle machine.\n")
    if details:
        print("Details:\n")
        print("\n".join(details))
        print()
    print("Audit trails:\n")
    for g, t in trails.items():
        receipts = len(seen.get(g, ())) if g in seen else None
        print(f"- {g}: {len(t)} records" + (f", {receipts} receipts answered to the load" if receipts is not None and g != "P" else ""))
    print(f"- peer receipts kept by A and B: {peer_receipts}, not in P's trail: {peer_lost}")
    print(f"- records without an answered request: {extras_allowed} while A's disk was full (allowed: a refused request "
          f"may be over-recorded), {len(extras_bad)} otherwise")
    print(f"- `hcgw audit verify` (with the signing certificates) on A, B, P: {'ok' if a.verify_ok else 'FAILED'}")
    if problems_global:
        print("\n**Failed:** " + "; ".join(problems_global))
    for x in extras_bad[:10]:
        print(f"  - record without answer: {x}")
    print(f"\nVerdict: {'FAIL' if any_fail else 'pass'}")
    return 1 if any_fail else 0


if __name__ == "__main__":
    sys.exit(main())
