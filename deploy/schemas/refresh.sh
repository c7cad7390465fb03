#!/usr/bin/env bash
# Regenerates the vendored Kubernetes JSON schemas in deploy/schemas/ (offline
# afterwards). Source: the kubernetes-validate wheel from PyPI, pinned by version
# and sha256; deploy/schemas/standalone.py inlines its references per kind.
# Run it after changing VERSIONS or standalone.py's KINDS, and commit the result.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
WHEEL_VERSION=1.37.0
WHEEL_SHA256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest.
VERSIONS="v1.30.0 v1.37.0"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" \
  "kubernetes-validate==$WHEEL_VERSION"
wheel=$(ls "$tmp"/kubernetes_validate-"$WHEEL_VERSION"-*.whl)
echo "$WHEEL_SHA256  $wheel" | sha256sum -c --quiet
for v in $VERSIONS; do
  "$PYTHON" - "$wheel" "$tmp/src" "$v" <<'PY'
import sys, zipfile
wheel, dest, version = sys.argv[1:]
prefix = f"kubernetes_validate/kubernetes-json-schema/{version}-local-strict/"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix)]
    if not names:
        sys.exit(f"{version}: not in {wheel}")
    z.extractall(dest, names)
PY
  rm -rf "$v-standalone-strict"
  "$PYTHON" standalone.py "$tmp/src/kubernetes_validate/kubernetes-json-schema/$v-local-strict" \
    "$v-standalone-strict"
done
