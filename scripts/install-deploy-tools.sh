#!/usr/bin/env bash
# Installs the deployment checkers into <repo>/.cache/tools/bin, built from source
# with the machine's Go (no prebuilt binary can be downloaded here):
#   helm         Helm 3, lint and template of deploy/helm/confab
#   kubeconform  schema validation (schemas are vendored in deploy/schemas)
#   kustomize    builds deploy/k8s overlays (kubectl is not needed)
#   deploylint   deploy/tools/deploylint: prometheus-operator objects, PromQL,
#                Grafana dashboards, skaffold.yaml and Dockerfile conventions
#   dockerfile-utils  Dockerfile linter from npm (pinned by deploy/tools/dockerfile-utils/
#                package-lock.json), installed with npm ci
# Idempotent and version-pinned: a tool is rebuilt only when its pin (or, for
# deploylint, its source) changes. Cold: about 4 minutes on 2 cores; warm: instant.
# Skaffold is not built: its Go module is refused by the module proxy (see docs/deploy.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=${CONFAB_TOOLS_DIR:-$ROOT/.cache/tools}
BIN=$TOOLS/bin
mkdir -p "$BIN" "$TOOLS/logs"

HELM_VERSION=v3.22.0
# The Kubernetes minor helm reports by default (its k8s.io modules are v0.37).
HELM_K8S_MINOR=37
KUBECONFORM_VERSION=v0.8.0
# v5.8.3 needs Go >= 1.27; v5.8.2 is the newest that builds with Go 1.26.
KUSTOMIZE_VERSION=v5.8.2

command -v go >/dev/null || { echo "install-deploy-tools: Go is required (go 1.26+)" >&2; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

pids=()
names=()

# go_install NAME MODULE@VERSION [extra -ldflags]
go_install() {
  local name=$1 spec=$2 ldflags=${3:-}
  local stamp="$BIN/.$name.stamp" want="$spec $ldflags"
  if [[ -x "$BIN/$name" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "install-deploy-tools: building $name ($spec)"
  (
    start=$SECONDS
    GOBIN="$BIN" go install -trimpath -ldflags "-s -w $ldflags" "$spec" \
      >"$TOOLS/logs/$name.log" 2>&1
    echo "$want" >"$stamp"
    echo "install-deploy-tools: $name built in $((SECONDS - start)) s"
  ) &
  pids+=($!)
  names+=("$name")
}

go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR"
go_install kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" \
  "-X main.version=$KUBECONFORM_VERSION"
go_install kustomize "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"

# deploylint: our own checker, rebuilt when its source or go.sum changes.
src=$ROOT/deploy/tools/deploylint
sum=$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go | sha256sum | cut -d' ' -f1)
if ! [[ -x "$BIN/deploylint" && -f "$BIN/.deploylint.stamp" && "$(cat "$BIN/.deploylint.stamp")" == "$sum" ]]; then
  echo "install-deploy-tools: building deploylint"
  (
    start=$SECONDS
    cd "$src"
    go build -mod=readonly -trimpath -ldflags "-s -w" -o "$BIN/deploylint" . >"$TOOLS/logs/deploylint.log" 2>&1
    echo "$sum" >"$BIN/.deploylint.stamp"
    echo "install-deploy-tools: deploylint built in $((SECONDS - start)) s"
  ) &
  pids+=($!)
  names+=(deploylint)
fi

# dockerfile-utils: npm ci of the committed lock into the tools folder.
npmsrc=$ROOT/deploy/tools/dockerfile-utils
npmdst=$TOOLS/dockerfile-utils
sum=$(cat "$npmsrc"/package.json "$npmsrc"/package-lock.json | sha256sum | cut -d' ' -f1)
if ! [[ -x "$npmdst/node_modules/.bin/dockerfile-utils" && -f "$npmdst/.stamp" && "$(cat "$npmdst/.stamp")" == "$sum" ]]; then
  command -v npm >/dev/null || { echo "install-deploy-tools: npm is required" >&2; exit 1; }
  echo "install-deploy-tools: installing dockerfile-utils (npm ci)"
  rm -rf "$npmdst" && mkdir -p "$npmdst"
  cp "$npmsrc"/package.json "$npmsrc"/package-lock.json "$npmdst"/
  npm ci --prefix "$npmdst" --no-audit --no-fund --loglevel=error >"$TOOLS/logs/dockerfile-utils.log" 2>&1 ||
    { cat "$TOOLS/logs/dockerfile-utils.log" >&2; exit 1; }
  echo "$sum" >"$npmdst/.stamp"
fi
ln -sf ../dockerfile-utils/node_modules/.bin/dockerfile-utils "$BIN/dockerfile-utils"

failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "install-deploy-tools: building ${names[$i]} failed:" >&2
    tail -30 "$TOOLS/logs/${names[$i]}.log" >&2
    failed=1
  fi
done
exit $failed
