#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, adapter contract tests, end-to-end tests
# (real TLS handshakes with the dev PKI, real servers, the real binary). The README's test
# command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# A gateway without the `sim` feature builds and has no simulator code (hcgw-sim absent).
cargo check -p hcgw --no-default-features --bins
deps=$(cargo tree -p hcgw --no-default-features -e normal --prefix none)
if [[ $deps == *hcgw-sim* ]]; then echo "hcgw without the sim feature depends on hcgw-sim" >&2; exit 1; fi
# One build of the test targets, shared PKI in target/test-pki (made by the tests).
exec cargo test --workspace --all-targets "$@"
