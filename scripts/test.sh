#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, adapter contract tests, end-to-end tests
# (real TLS handshakes with the dev PKI, real servers, the real binary). The README's test
# command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# One build of the test targets, shared PKI in target/test-pki (made by the tests).
exec cargo test --workspace --all-targets "$@"
