#!/usr/bin/env bash
# Install what the reverse-proxy tests need: Debian's nginx (apt). The tests
# start it themselves, as an ordinary foreground process with a temporary
# configuration (never the system service).
#
#   interop/nginx/install.sh     # fast no-op when `nginx -v` already works
#
# apt needs root (CI runs as root). When nginx already answers -v, apt is not
# touched at all.
set -euo pipefail

nginx_works() {
  command -v nginx >/dev/null 2>&1 && nginx -v >/dev/null 2>&1
}

if nginx_works; then
  echo "nginx: $(nginx -v 2>&1) already installed"
  exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
  echo "install.sh: nginx is missing and installing it needs root (apt-get install -y nginx)" >&2
  exit 1
fi
echo "nginx: installing Debian's nginx (apt-get) ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The package's post-install starts the system service where it can; the
# tests never use it, so stop it again if it did start.
apt-get install -y -qq --no-install-recommends nginx >/dev/null
if command -v systemctl >/dev/null 2>&1; then systemctl stop nginx >/dev/null 2>&1 || true; fi
if [[ -f /run/nginx.pid ]]; then nginx -s stop >/dev/null 2>&1 || true; fi
if ! nginx_works; then
  echo "install.sh: nginx -v fails after apt-get install" >&2
  exit 1
fi
echo "nginx: $(nginx -v 2>&1)"
