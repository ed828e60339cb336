#!/usr/bin/env bash
# Installs the system packages hcgw's tests and tools need, only when missing.
# Debian packages: openssl (the dev PKI), redis-server (shared-tier tests start their own),
# prometheus (promtool checks ops/prometheus-alerts.yml), chromium and a small CJK font
# (the status page's browser test and its screenshot, which shows the regions' names);
# pkg-config and libssl-dev (the build: openssl-sys). scripts/check-deploy.sh installs its PyPI
# tools; scripts/image-smoke.sh installs podman and mmdebstrap. From PyPI: the independent
# RFC 9421 verifier the signed-answer tests use (tests/e2e/rfc9421_verify.py).
set -euo pipefail

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v redis-server >/dev/null || need+=(redis-server)
command -v curl >/dev/null || need+=(curl)
command -v promtool >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
[[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]] || need+=(fonts-wqy-microhei)
command -v pkg-config >/dev/null || need+=(pkg-config)
[[ -e /usr/include/openssl/ssl.h ]] || need+=(libssl-dev)

if ((${#need[@]})); then
  echo "install-deps: installing ${need[*]}"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! python3 -c "import http_message_signatures" 2>/dev/null; then
  echo "install-deps: installing http-message-signatures (PyPI)"
  python3 -m pip install -q --disable-pip-version-check "http-message-signatures==3.0.0"
fi
