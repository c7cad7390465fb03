#!/usr/bin/env bash
# Ensure Debian's redis-server binary is available; a no-op when it already is.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  SUDO="sudo"
fi
echo "install-redis: installing redis-server via apt-get" >&2
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y redis-server
# Debian's package starts a system-wide instance on :6379 where systemd runs;
# the dev servers start their own on free ports, so that one is not needed.
command -v redis-server >/dev/null 2>&1
