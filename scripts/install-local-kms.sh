#!/usr/bin/env bash
# Builds local-kms (a KMS-API-compatible server, github.com/nsmithuk/local-kms)
# from the Go module proxy into .cache/local-kms/bin; a no-op once built. The
# conversation service's AwsKmsProvider is tested against it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=v0.0.0-20260228092603-2a5e92d09ab6
bin="$root/.cache/local-kms/bin"
stamp="$bin/.complete-$version"
if [[ -x "$bin/local-kms" && -f "$stamp" ]]; then
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "install-local-kms: go is not on PATH" >&2; exit 1; }
echo "install-local-kms: building local-kms $version" >&2
mkdir -p "$bin"
GOBIN="$bin" GOMODCACHE="$root/.cache/go-mod" GOCACHE="$root/.cache/go-build" GOFLAGS=-modcacherw \
  go install "github.com/nsmithuk/local-kms@$version"
touch "$stamp"
