#!/usr/bin/env bash
# Install what the metrics test needs: Prometheus's own `promtool` (Debian's
# `prometheus` package, apt), which checks the admin listener's /metrics text.
#
#   interop/prometheus/install.sh     # fast no-op when `promtool --version` already works
#
# apt needs root (CI runs as root). When promtool already answers, apt is not
# touched at all. The package's service is never used by the tests.
set -euo pipefail

promtool_works() {
  command -v promtool >/dev/null 2>&1 && promtool --version >/dev/null 2>&1
}

if promtool_works; then
  echo "promtool: $(promtool --version 2>&1 | head -n 1) already installed"
  exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
  echo "install.sh: promtool is missing and installing it needs root (apt-get install -y prometheus)" >&2
  exit 1
fi
echo "promtool: installing Debian's prometheus (apt-get) ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The post-install may start the system service; the tests never use it.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
if ! promtool_works; then
  echo "install.sh: promtool --version fails after apt-get install" >&2
  exit 1
fi
echo "promtool: $(promtool --version 2>&1 | head -n 1)"
