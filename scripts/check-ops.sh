#!/usr/bin/env bash
# Checks the operations files: the Prometheus alert rules (syntax with `promtool check
# rules`, behaviour with `promtool test rules`), that every rule has a unit test and a runbook
# section (scripts/check-ops.py), and that the Grafana dashboard is JSON without unused inputs.
# That every metric they use is really exported is checked by the e2e test `ops`.
# .ci/run calls it; scripts/install-deps.sh installs promtool (Debian package prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null; then
  echo "check-ops: promtool not found (run scripts/install-deps.sh: Debian package prometheus)" >&2
  exit 1
fi
promtool check rules ops/prometheus-alerts.yml
promtool test rules ops/prometheus-alerts.test.yml
python3 scripts/check-ops.py
echo "check-ops: ok"
