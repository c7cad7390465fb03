#!/usr/bin/env bash
# Builds versitygw (an S3-compatible gateway, github.com/versity/versitygw) from
# the Go module proxy into .cache/versitygw/bin; a no-op once built. The
# conversation service's S3BlobStore is tested against it (libs/devservers S3Server).
#
# Why versitygw rather than SeaweedFS: one small binary whose posix backend keeps
# objects as plain files in a directory, with no master/volume/filer servers to
# start and wait for, and it builds from the module proxy in a few minutes.
# MinIO is not on the registries this project can reach.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=v1.8.0
bin="$root/.cache/versitygw/bin"
stamp="$bin/.complete-$version"
if [[ -x "$bin/versitygw" && -f "$stamp" ]]; then
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "install-s3: go is not on PATH" >&2; exit 1; }
echo "install-s3: building versitygw $version" >&2
mkdir -p "$bin"
GOBIN="$bin" GOMODCACHE="$root/.cache/go-mod" GOCACHE="$root/.cache/go-build" GOFLAGS=-modcacherw \
  go install "github.com/versity/versitygw/cmd/versitygw@$version"
touch "$stamp"
