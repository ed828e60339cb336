#!/usr/bin/env bash
# Installs what the benchmark needs, only when missing: nginx (Debian) and oha (crates.io).
set -euo pipefail
if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light >/dev/null || \
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx >/dev/null
fi
if ! command -v oha >/dev/null; then
  echo "install-bench-deps: building oha from crates.io (a few minutes)"
  cargo install oha --locked --quiet
fi
