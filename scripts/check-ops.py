#!/usr/bin/env python3
"""Consistency of the operations files, beyond what promtool checks.

- every alert rule of ops/prometheus-alerts.yml is exercised by at least one test of
  ops/prometheus-alerts.test.yml that expects it to fire;
- every rule has a `runbook_url` annotation `docs/operations.md#<anchor>` whose anchor is a
  heading of docs/operations.md (GitHub's anchor rules: lowercase, spaces to dashes);
- the Grafana dashboard is JSON and declares no `__inputs` (it uses a `datasource` variable).

Uses only the standard library (no YAML parser: the files' line layout is fixed enough).
"""
import json
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
problems = []

rules = root / "ops/prometheus-alerts.yml"
tests = root / "ops/prometheus-alerts.test.yml"
runbook = root / "docs/operations.md"

alerts = {}  # name -> runbook_url
current = None
for line in rules.read_text().splitlines():
    m = re.match(r"\s*- alert: (\S+)", line)
    if m:
        current = m.group(1)
        alerts[current] = None
        continue
    m = re.match(r'\s*runbook_url: "?([^"]+)"?\s*$', line)
    if m and current:
        alerts[current] = m.group(1)

fired = set()
name = None
for line in tests.read_text().splitlines():
    m = re.match(r"\s*alertname: (\S+)", line)
    if m:
        name = m.group(1)
        continue
    if name and re.match(r"\s*- exp_labels:", line):
        fired.add(name)

anchors = set()
for line in runbook.read_text().splitlines():
    m = re.match(r"#+\s+(.*)", line)
    if m:
        a = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        anchors.add(a)

for alert, url in sorted(alerts.items()):
    if alert not in fired:
        problems.append(f"{alert}: no test in {tests.name} expects it to fire")
    if not url:
        problems.append(f"{alert}: no runbook_url annotation")
        continue
    m = re.fullmatch(r"docs/operations\.md#([\w\-]+)", url)
    if not m:
        problems.append(f"{alert}: runbook_url {url!r} is not docs/operations.md#<section>")
    elif m.group(1) not in anchors:
        problems.append(f"{alert}: runbook_url {url!r}: no such section in docs/operations.md")

dashboard = root / "ops/grafana-dashboard.json"
try:
    d = json.loads(dashboard.read_text())
    if "__inputs" in d:
        problems.append("ops/grafana-dashboard.json: unused __inputs (the dashboard uses a datasource variable)")
except json.JSONDecodeError as e:
    problems.append(f"ops/grafana-dashboard.json: not JSON: {e}")

if problems:
    for p in problems:
        print(f"check-ops: {p}", file=sys.stderr)
    sys.exit(1)
print(f"check-ops: {len(alerts)} alert rules, each tested and with a runbook section; dashboard parses")
