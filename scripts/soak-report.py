#!/usr/bin/env python3
"""Turns the raw results of scripts/soak.sh into a Markdown report and judges each criterion
of the endurance run (issue 16, item 3) from the measurements; exits 1 when one is missed.

    soak-report.py OUT SMOKE RATE SOAK_SECONDS WARMUP_S PROFILE
"""
import json
import os
import re
import sys
from statistics import median
from datetime import datetime, timezone

out, smoke, rate = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
seconds, warmup, profile = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
NAMES = ["a", "b"]
RSS_LIMIT_PCT = 5.0


def read(name, default=None):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return f.read().strip()


def load(name):
    text = read(name)
    return json.loads(text.splitlines()[-1]) if text else None


soak = load("soak.json")
peak = load("max.json")
phases = [("max", peak)] if peak else []
phases.append(("soak", soak))
verdicts = []  # (criterion, measured, verdict bool or None for "not enforced")


def verdict(ok):
    return "met" if ok else "**missed**"


def ms(x):
    return "—" if x is None or x != x else f"{x:.2f}"


# --- Harness and unexpected answers -------------------------------------------------------
def harness(run):
    classes = [c for c in run["classes"] if c["name"] != "warm"]
    sent = sum(c["sent"] for c in run["classes"])
    answered = sum(c["answered"] for c in run["classes"])
    failed = sum(c["failed"] for c in run["classes"])
    idle = [c["name"] for c in classes if c["answered"] == 0]
    ok = (answered == sent and failed == 0 and not idle and run["skipped_overload"] == 0
          and run["still_in_flight"] == 0)
    what = (f"{sent} sent, {answered} answered, {failed} without answer, "
            f"{run['skipped_overload']} not sent (driver overloaded)")
    if idle:
        what += f", classes without an answer: {', '.join(idle)}"
    return ok, what


for phase, run in phases:
    ok, what = harness(run)
    verdicts.append((f"{phase}: every scheduled request sent and answered, every class answered", what, ok))
for phase, run in phases:
    n = sum(c["unexpected"] for c in run["classes"])
    verdicts.append((f"{phase}: zero unexpected answers", str(n), n == 0))

# --- RSS ------------------------------------------------------------------------------------
rows = []
for line in (read("rss.txt") or "").splitlines()[1:]:
    parts = line.split()
    if len(parts) == 4:
        rows.append([int(p) for p in parts])
rss = {}
for i, n in enumerate(NAMES):
    series = [(r[0], r[1 + i]) for r in rows if r[1 + i] > 0]
    after = [v for t, v in series if t >= warmup]
    if not series or not after:
        rss[n] = None
        continue
    # After the warm-up and at the end: the median of three samples each (one sample can
    # catch a burst of connections; a leak moves every sample).
    start, warm, end = series[0][1], median(after[:3]), median(after[-3:])
    rss[n] = {"start": start, "warm": warm, "end": end, "peak": max(after),
              "growth": (end - warm) / warm * 100, "samples": len(series)}
for n in NAMES:
    r = rss[n]
    crit = f"RSS of instance {n}: growth after warm-up < {RSS_LIMIT_PCT:.0f}%"
    if r is None:
        verdicts.append((crit, "no sample after the warm-up", None if smoke else False))
    else:
        what = f"{r['growth']:+.2f}% ({r['warm'] / 1024:.1f} → {r['end'] / 1024:.1f} MiB)"
        verdicts.append((crit, what + (" (smoke: not enforced)" if smoke else ""),
                         None if smoke else r["growth"] < RSS_LIMIT_PCT))

# --- Audit trails ---------------------------------------------------------------------------
audit_rows = []
for phase, run in phases:
    for i, n in enumerate(NAMES):
        g = run["gateways"][i]
        text = read(f"verify-{phase}-{n}.txt", "")
        code = int(read(f"verify-{phase}-{n}.exit", "1"))
        m = re.search(r"(\d+) records", text)
        records = int(m.group(1)) if m else -1
        lines = int(read(f"lines-{phase}-{n}.txt", "-1"))
        counts = [records, lines, g["predicted_audit"], g["receipts"], g["distinct_receipt_seqs"],
                  g["max_receipt_seq"]]
        ok = code == 0 and len(set(counts)) == 1 and records > 0 and run["duplicate_receipts"] == 0
        first = "; ".join(text.splitlines()) if text else "(no output)"
        audit_rows.append((phase, n, g["answered"], code, records, lines, g["predicted_audit"], g["receipts"],
                           g["distinct_receipt_seqs"], g["max_receipt_seq"], first))
        verdicts.append((f"{phase}: trail of instance {n} verifies with exactly one record per audited answer",
                         f"verify exit {code}; {records} records = {g['predicted_audit']} predicted = "
                         f"{g['receipts']} receipts" if ok else
                         f"verify exit {code}; records {records}, lines {lines}, predicted {g['predicted_audit']}, "
                         f"receipts {g['receipts']} ({g['distinct_receipt_seqs']} distinct, max seq "
                         f"{g['max_receipt_seq']}), duplicates {run['duplicate_receipts']}", ok))

# --- Graceful stop, personal data -----------------------------------------------------------
for phase, _ in phases:
    for n in NAMES:
        code = read(f"{phase}-{n}.exit", "missing")
        verdicts.append((f"{phase}: instance {n} exits 0 on SIGTERM", f"exit {code}", code == "0"))
leaks = int(read("leaks.txt", "-1"))
control = int(read("leak-control.txt", "0"))
verdicts.append(("no QR token or identity number sent appears in the logs or audit files",
                 (f"{leaks} matching lines" if leaks >= 0 else "not checked")
                 + ("" if control == 1 else "; the search missed its control line"),
                 leaks == 0 and control == 1))

# --- Report ---------------------------------------------------------------------------------
now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
title = "hcgw endurance run" + (" (SMOKE RUN: tiny rate, debug build; the figures mean nothing)" if smoke else "")
print(f"# {title} — {now}, {os.cpu_count()} cores")
print()
how = (f"half the measured maximum of {peak['answered_rate']:.0f} cached lookups/s "
       f"(closed loop, {peak['concurrency_per_gateway']:.0f} in flight per instance, {peak['duration_s']:.0f} s)"
       if peak and not smoke else "given (RATE)" if not peak else
       f"fixed for the smoke run (maximum measured: {peak['answered_rate']:.0f}/s)")
print(f"Two instances (`{profile}` build) sharing one Redis, simulators at 20 ms; strict audit, "
      f"fsync per batch, access log on, answers signed, JSON logs at info; every request over mTLS. "
      f"Rate **{rate}/s** ({how}), open loop, for **{seconds} s** "
      f"(warm-up {warmup} s); achieved {soak['achieved_rate']:.1f} req/s sent, "
      f"{soak['answered_rate']:.1f} answered/s.")
print()
print("| criterion | measured | verdict |")
print("|---|---|---|")
for crit, what, ok in verdicts:
    print(f"| {crit} | {what} | {'not enforced' if ok is None else verdict(ok)} |")
print()
print("## Requests per class (soak)")
print()
print("| class | rate/s | sent | answered | by status | unexpected | cache hits | p50 ms | p99 ms | max ms | audit records |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for c in soak["classes"]:
    by = "; ".join(f"{k}: {v}" for k, v in c["by_status"].items())
    print(f"| {c['name']} | {c['rate']:.1f} | {c['sent']} | {c['answered']} | {by} | {c['unexpected']} | "
          f"{c['cache_hits']} | {ms(c['p50_ms'])} | {ms(c['p99_ms'])} | {ms(c['max_ms'])} | "
          f"{sum(c['predicted_audit'])} ({c['audit_rule']}) |")
total_sent = sum(c["sent"] for c in soak["classes"])
total_ans = sum(c["answered"] for c in soak["classes"])
print(f"| **total** | {rate} | {total_sent} | {total_ans} | | "
      f"{sum(c['unexpected'] for c in soak['classes'])} | | | | | "
      f"{sum(sum(c['predicted_audit']) for c in soak['classes'])} |")
print()
print("`warm`: each hot subject asked once through each instance before the timed run. Latency is "
      "measured from each request's scheduled time. The errors are expected answers: "
      "`err_not_found` (a subject the region does not know, 404), `err_invalid_id` (a resident id "
      "with a wrong check digit, 400), `err_unknown_region` (400), `err_bad_qr` (a verify of an "
      "unrecognised QR text, 422), `err_bad_json` (a truncated body, 400), `err_region_down` and "
      "`verify_region_down` (Huzhou taken down through `/_sim/control`: 503 `region_unavailable`, "
      "and `manual_check` for a verify). A cached or uncached lookup must also have the colour the "
      "simulator intends for its subject; a batch holds 9 valid items and one with an unknown region.")
samples = soak.get("unexpected_samples") or []
if peak:
    samples += peak.get("unexpected_samples") or []
if samples:
    print()
    print("Unexpected answers (first ones):")
    print()
    for s in samples[:20]:
        print(f"- {s}")
print()
print("## Memory (VmRSS, sampled every 10 s)")
print()
print(f"After warm-up: the median of the first three samples from {warmup} s on; end: the median of the "
      "last three. Growth: from the one to the other.")
print()
print("| instance | start MiB | after warm-up MiB | end MiB | peak after warm-up MiB | growth after warm-up | samples |")
print("|---|---|---|---|---|---|---|")
for n in NAMES:
    r = rss[n]
    if r:
        print(f"| {n} | {r['start'] / 1024:.1f} | {r['warm'] / 1024:.1f} | {r['end'] / 1024:.1f} | "
              f"{r['peak'] / 1024:.1f} | {r['growth']:+.2f}% | {r['samples']} |")
    else:
        print(f"| {n} | — | — | — | — | — | — |")
redis = [r[3] for r in rows if r[3] > 0]
if redis:
    print()
    print(f"Redis (for information): {redis[0] / 1024:.1f} MiB at the start, {redis[-1] / 1024:.1f} MiB at the end.")
print()
print("## Audit trails")
print()
print("Records predicted from the tallies (docs/audit.md: one per lookup, batch item and verify "
      "that passed validation, whatever its outcome; none for a request refused by validation), "
      "receipts (`audit.seq`) the answers carried, and what `hcgw audit verify DIR --key CERT` "
      "found after SIGTERM.")
print()
print("| phase | instance | answered requests | verify exit | records | lines | predicted from the tallies | receipts | distinct seqs | max seq | verify says |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for row in audit_rows:
    *cells, said = row
    print("| " + " | ".join(str(c) for c in cells) + f" | {said} |")
print()
print("A request without an answer (a connection refused or cut) may still have its record, so "
      "the counts can only be exact when every request was answered.")
metrics = []
for n in NAMES:
    text = read(f"metrics-soak-{n}.txt", "") or ""
    keep = [line for line in text.splitlines()
            if line.startswith(("hcgw_connections_refused_total", "hcgw_connections_closed_total",
                                "hcgw_audit_records_total", "hcgw_audit_write_failures_total"))
            and line.split()[-1] != "0"]
    metrics.append(f"- {n}: " + ("; ".join(f"`{line}`" for line in keep) if keep else "none"))
print()
print("Connection and audit counters of each instance at the end of the soak (those not zero):")
print()
print("\n".join(metrics))
print()
print("Warnings and errors the instances logged during the soak, by message (for information; "
      "the simulators' unmapped values and the region taken down log them by design):")
print()
for n in NAMES:
    lines = (read(f"warnings-{n}.txt", "") or "").splitlines()
    print(f"- {n}: " + ("; ".join(lines) if lines else "none"))
print()
# --- CPU, once a second (for information: headroom, and stalls behind latency outliers) ------
cpu = []
for line in (read("cpu.txt") or "").splitlines()[1:]:
    parts = line.split()
    if len(parts) == 6:
        cpu.append([int(p) for p in parts])
secs = []
for a, b in zip(cpu, cpu[1:]):
    dt, dtotal = (b[0] - a[0]) / 1000, b[2] - a[2]
    if dt <= 0 or dtotal <= 0:
        continue
    secs.append({"t": (a[0] - cpu[0][0]) / 1000, "busy": 100 * (b[1] - a[1]) / dtotal,
                 "runnable": b[3], "a": (b[4] - a[4]) / 100 / dt, "b": (b[5] - a[5]) / 100 / dt})
if secs:
    def pct(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(p * len(xs)))]
    busy = [x["busy"] for x in secs]
    run = [x["runnable"] for x in secs]
    print("## CPU (sampled once a second, whole machine and each instance)")
    print()
    print(f"{len(secs)} samples. Machine busy: median {median(busy):.0f}%, p90 {pct(busy, 0.9):.0f}%, "
          f"max {max(busy):.0f}%; seconds at ≥ 95% busy: {sum(b >= 95 for b in busy)}. Runnable "
          f"tasks: median {median(run):.0f}, max {max(run)} ({os.cpu_count()} cores). Instance a "
          f"{median([x['a'] for x in secs]):.2f} cores, b {median([x['b'] for x in secs]):.2f} "
          "cores (medians).")
    print()
    print("Busiest seconds (from the start of sampling):")
    print()
    for x in sorted(secs, key=lambda x: -x["busy"])[:5]:
        print(f"- {x['t']:.0f} s: {x['busy']:.0f}% busy, {x['runnable']} runnable, "
              f"a {x['a']:.2f} cores, b {x['b']:.2f} cores")
    print()
print("Command: `scripts/soak.sh [MINUTES]` (`RATE=` fixes the rate; `--smoke` for CI).")

sys.exit(0 if all(ok is not False for _, _, ok in verdicts) else 1)
