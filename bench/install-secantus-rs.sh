#!/usr/bin/env bash
# Builds SecantusDB's Rust server (secantusd-rs) for the benchmarks, once.
#
# Usage: bench/install-secantus-rs.sh [ROOT]     (prints the binary's path)
# ROOT defaults to .cache/secantus-rs; an existing build there (or at
# $CONFAB_SECANTUS_BIN) is reused. A build takes about 5 minutes on 2 cores.
set -euo pipefail

VERSION="0.5.3-beta.196"
ROOT="${1:-.cache/secantus-rs}"
# Absolute: the fleet starts the server from its own working directory.
mkdir -p "$ROOT"
ROOT="$(cd "$ROOT" && pwd)"
BIN="$ROOT/bin/secantusd-rs"

if [[ -n "${CONFAB_SECANTUS_BIN:-}" && -x "${CONFAB_SECANTUS_BIN}" ]]; then
  echo "$CONFAB_SECANTUS_BIN"
  exit 0
fi
if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-secantus-rs: cargo is missing; install a Rust toolchain first" >&2
  exit 1
fi
echo "install-secantus-rs: building secantus-mdb $VERSION into $ROOT (about 5 minutes)" >&2
cargo install secantus-mdb --version "$VERSION" --ignore-rust-version --locked --root "$ROOT" >&2 \
  || cargo install secantus-mdb --version "$VERSION" --ignore-rust-version --root "$ROOT" >&2
if [[ ! -x "$BIN" ]]; then
  echo "install-secantus-rs: the build finished but $BIN is missing; binaries in $ROOT/bin:" >&2
  ls "$ROOT/bin" >&2 || true
  exit 1
fi
echo "$BIN"
