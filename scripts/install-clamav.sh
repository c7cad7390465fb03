#!/usr/bin/env bash
# Ensure Debian's clamd (package clamav-daemon) is available; a no-op when it
# already is. The dev servers run their own clamd (libs/devservers ClamdServer)
# on a free port with a signature file the project writes (the EICAR test
# signature), so neither the package's clamd service nor freshclam is needed:
# no signature database can be downloaded here anyway.
set -euo pipefail

if command -v clamd >/dev/null 2>&1 || [[ -x /usr/sbin/clamd ]]; then
  exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  SUDO="sudo"
fi
echo "install-clamav: installing clamav-daemon via apt-get" >&2
install() {
  # Recommends would pull clamdscan, documentation and mail tools the tests never use.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends clamav-daemon
}
# The index refresh is skipped when the package lists already know clamav-daemon
# (install-redis.sh has just refreshed them on a fresh machine); lists too old for
# the mirror make the install fail, and then it refreshes and tries again.
if ! apt-cache policy clamav-daemon 2>/dev/null | grep -q 'Candidate: [0-9]' || ! install; then
  $SUDO apt-get update
  install
fi
[[ -x /usr/sbin/clamd ]] || command -v clamd >/dev/null 2>&1
