#!/usr/bin/env bash
# Install what the browser tests need: Debian's Chromium (apt) and the pinned
# playwright-core (npm ci of this directory). Nothing ever downloads a browser
# build of its own: playwright-core drives /usr/bin/chromium.
#
#   interop/browser/install.sh     # fast no-op when already installed
#
# apt needs root (CI runs as root). When /usr/bin/chromium already answers
# --version, apt is not touched at all.
set -euo pipefail

here=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
chromium=/usr/bin/chromium
stamp_name=.clawgate-install-stamp
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

chromium_works() {
  [[ -x "$chromium" ]] && "$chromium" --version >/dev/null 2>&1
}

# 1. Chromium from Debian.
if chromium_works; then
  echo "chromium: $("$chromium" --version 2>/dev/null) already installed"
else
  if [[ "$(id -u)" != 0 ]]; then
    echo "install.sh: $chromium is missing and installing it needs root (apt-get install -y chromium)" >&2
    exit 1
  fi
  echo "chromium: installing Debian's chromium (apt-get) ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
  if ! chromium_works; then
    echo "install.sh: $chromium --version fails after apt-get install" >&2
    exit 1
  fi
  echo "chromium: $("$chromium" --version 2>/dev/null)"
fi

# 2. playwright-core from the lockfile.
lock_sum() {
  cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1
}
if [[ -f "$here/node_modules/$stamp_name" ]] &&
   [[ "$(cat "$here/node_modules/$stamp_name")" == "$(lock_sum)" ]]; then
  echo "playwright-core: already installed"
else
  echo "playwright-core: npm ci ..."
  rm -f "$here/node_modules/$stamp_name"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  lock_sum > "$here/node_modules/$stamp_name"
fi
