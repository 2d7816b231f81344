#!/usr/bin/env bash
# Run the real OpenClaw gateway (openclaw@2026.9.6, installed by install.sh) as
# an upstream for tests: HOME in a fresh temporary directory, loopback only,
# token auth, the Control UI enabled, plugins/cron/mDNS/update checks off.
#
#   OPENCLAW_GATEWAY_TOKEN=T interop/openclaw/upstream.sh --port P [--home DIR] [--detach]
#
# The token is read from the environment only (argv is visible in ps).
# --home DIR   use DIR as HOME (must exist; default: a new mktemp -d)
# --detach     start the gateway in its own process group, wait until it
#              answers `health` (health.mjs, up to 90 s), print one JSON line
#              {"pid","pgid","port","url","home","log"} and exit; stop it with
#              kill -TERM -- -<pgid>. Without --detach the gateway replaces
#              this shell (exec) and runs in the foreground.
# The gateway's own log goes to <home>/openclaw.log; with --detach its
# stdout/stderr go to <home>/gateway.out.
set -euo pipefail

here=$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
port='' home='' detach=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --port) port=${2:?--port needs a value}; shift 2 ;;
    --home) home=${2:?--home needs a value}; shift 2 ;;
    --detach) detach=1; shift ;;
    *) echo "upstream.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $port =~ ^[0-9]+$ ]] || { echo "upstream.sh: --port P is required" >&2; exit 2; }
[[ -n ${OPENCLAW_GATEWAY_TOKEN:-} ]] || { echo "upstream.sh: set OPENCLAW_GATEWAY_TOKEN" >&2; exit 2; }
if [[ -z $home ]]; then home=$(mktemp -d); fi
[[ -d $home ]] || { echo "upstream.sh: --home $home is not a directory" >&2; exit 2; }
home=$(CDPATH= cd -- "$home" && pwd)

# shellcheck source=env.sh
. "$here/env.sh"
command -v openclaw >/dev/null || { echo "upstream.sh: openclaw missing: run interop/openclaw/install.sh" >&2; exit 1; }

mkdir -p "$home/.openclaw"
# trustedProxies lists loopback so a front on this host (clawgate) may be
# named as a proxy; the Control UI stays enabled (the browser tests load it);
# the terminal, plugins, cron, mDNS, model-catalog and update checks are off
# so nothing reaches out of the machine.
cat > "$home/.openclaw/openclaw.json" <<JSON
{
  "gateway": {
    "mode": "local", "bind": "loopback", "port": $port,
    "auth": { "mode": "token" },
    "trustedProxies": ["127.0.0.1", "::1"],
    "controlUi": { "enabled": true },
    "terminal": { "enabled": false },
    "tailscale": { "mode": "off" }
  },
  "plugins": { "enabled": false },
  "discovery": { "mdns": { "mode": "off" } },
  "update": { "checkOnStart": false },
  "models": { "catalogRefresh": { "enabled": false } },
  "cron": { "enabled": false },
  "logging": { "file": "$home/openclaw.log" }
}
JSON

export HOME=$home OPENCLAW_NO_AUTO_UPDATE=1 NO_COLOR=1
cd "$home"
if [[ $detach == 0 ]]; then
  exec openclaw gateway run
fi

setsid openclaw gateway run > "$home/gateway.out" 2>&1 < /dev/null &
pid=$!
if ! node "$here/health.mjs" --port "$port" --timeout-ms 90000 > "$home/health.json"; then
  kill -TERM -- "-$pid" 2>/dev/null || true
  echo "upstream.sh: the gateway did not answer health; see $home/gateway.out" >&2
  tail -n 20 "$home/gateway.out" >&2 || true
  exit 1
fi
printf '{"pid":%d,"pgid":%d,"port":%d,"url":"ws://127.0.0.1:%d","home":"%s","log":"%s"}\n' \
  "$pid" "$pid" "$port" "$port" "$home" "$home/openclaw.log"
