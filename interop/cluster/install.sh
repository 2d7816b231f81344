#!/usr/bin/env bash
# Install what the cluster tests need: Debian's PostgreSQL server (the
# PostgreSQL store's tests start their own with initdb and pg_ctl, as user
# postgres, in a temporary directory on a loopback port) and Debian's
# nats-server (the cluster bus).
#
#   interop/cluster/install.sh     # fast no-op when both are already there
#
# apt needs root (CI runs as root). The packages' own services are never
# used by the tests.
set -euo pipefail

# Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin.
pg_bindir() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir="$(pg_config --bindir 2>/dev/null || true)"
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
      echo "$dir"
      return 0
    fi
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

postgres_works() {
  local dir
  dir="$(pg_bindir)" || return 1
  "$dir/initdb" --version >/dev/null 2>&1 && id -u postgres >/dev/null 2>&1
}

nats_works() {
  command -v nats-server >/dev/null 2>&1 && nats-server --version >/dev/null 2>&1
}

if postgres_works && nats_works; then
  echo "postgresql: $("$(pg_bindir)/initdb" --version), nats-server: $(nats-server --version 2>&1 | head -n 1) already installed"
  exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
  echo "install.sh: PostgreSQL or nats-server is missing and installing them needs root" \
       "(apt-get install -y postgresql nats-server)" >&2
  exit 1
fi
echo "cluster: installing Debian's postgresql and nats-server (apt-get) ..."
export DEBIAN_FRONTEND=noninteractive
# Update the package lists once: when they do not know the packages yet,
# or when installing from them fails (a stale list names a removed version).
install() { apt-get install -y -qq --no-install-recommends postgresql nats-server >/dev/null; }
if ! apt-cache show nats-server >/dev/null 2>&1 || ! apt-cache show postgresql >/dev/null 2>&1; then
  apt-get update -qq
  install
elif ! install; then
  apt-get update -qq
  install
fi
# The post-install may start the system services; the tests never use them.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop postgresql nats-server >/dev/null 2>&1 || true
fi
if ! postgres_works; then
  echo "install.sh: PostgreSQL's initdb is not found after apt-get install" >&2
  exit 1
fi
if ! nats_works; then
  echo "install.sh: nats-server --version fails after apt-get install" >&2
  exit 1
fi
echo "postgresql: $("$(pg_bindir)/initdb" --version), nats-server: $(nats-server --version 2>&1 | head -n 1)"
