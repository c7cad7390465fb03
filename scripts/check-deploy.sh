#!/usr/bin/env bash
# Checks everything under deploy/, the Dockerfiles and skaffold.yaml, with real
# tools built by scripts/install-deploy-tools.sh; fails on any error.
#   1. deploy/Dockerfile (the one image recipe, --build-arg SERVICE=<name>):
#      dockerfile-utils lint (syntax, flags, instructions), Confab's image
#      conventions (deploylint); skaffold.yaml (deploylint: skaffold cannot be
#      installed here, see docs/deploy.md); the builder stage run for each service
#      without a container engine (none here): its uv steps on
#      the real uv.lock, then an import from the built virtualenv
#      (CONFAB_SKIP_BUILDSTAGE=1 skips that part, ~30 s), and every shared library
#      its compiled modules need is in the virtualenv or the slim base image
#      (scripts/check-native-libs.py: Pillow, pypdfium2 ... ship theirs in the wheel)
#   2. helm lint --strict and helm template with the default, prod and dev values
#   3. the kustomize base is the chart's current render (deploy/k8s/render.sh)
#   4. kustomize build of overlays/dev and overlays/prod
#   5. kubeconform -strict on every rendered manifest, against the vendored schemas
#      of the oldest (1.30) and newest (1.37) Kubernetes the chart targets
#   6. ServiceMonitor, PrometheusRule and Grafana dashboards (kubeconform has no
#      schema for the CRDs): deploylint monitoring, with the metric names the
#      services define
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/install-deploy-tools.sh"
BIN=${CONFAB_TOOLS_DIR:-$ROOT/.cache/tools}/bin
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
CHART=deploy/helm/confab
K8S_VERSIONS="1.30.0 1.37.0"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

step() { echo "check-deploy: $*"; }

step "deploy/Dockerfile and skaffold.yaml"
"$BIN/dockerfile-utils" lint deploy/Dockerfile || { echo "check-deploy: deploy/Dockerfile: dockerfile-utils lint failed" >&2; exit 1; }
echo "dockerfile-utils lint: deploy/Dockerfile, 0 problems"
"$BIN/deploylint" dockerfile -root "$ROOT"
"$BIN/deploylint" skaffold -root "$ROOT"
if [[ ${CONFAB_SKIP_BUILDSTAGE:-0} != 1 ]]; then
  step "deploy/Dockerfile's builder stage without Docker, per service (uv sync into a scratch virtualenv)"
  services=$(for p in services/*/pyproject.toml; do basename "$(dirname "$p")"; done)
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  echo "$services" | xargs -P 2 -I{} sh -c \
    'mkdir -p "$1/build-$2" && "$3/deploylint" buildstage -root "$4" -service "$2" -workdir "$1/build-$2" -uv "$5" >"$1/build-$2.log" 2>&1 || { tail -40 "$1/build-$2.log" >&2; exit 1; }' \
    _ "$OUT" {} "$BIN" "$ROOT" "${UV:-$PYTHON -m uv}"
  for s in $services; do
    tail -1 "$OUT/build-$s.log"
    # The runtime stage is the slim base plus this virtualenv: a wheel's native
    # library must be bundled in it (manylinux) or be in the base image.
    "$PYTHON" scripts/check-native-libs.py "$OUT/build-$s"
    rm -rf "$OUT/build-$s"
  done
fi

for v in default prod dev; do
  values=()
  [[ $v == default ]] || values=(-f "$CHART/values-$v.yaml")
  step "helm lint --strict ($v values)"
  "$BIN/helm" lint --strict --quiet --kube-version 1.30.0 "$CHART" "${values[@]}"
  "$BIN/helm" template confab "$CHART" --namespace confab --kube-version 1.30.0 \
    "${values[@]}" >"$OUT/helm-$v.yaml"
done

step "kustomize base matches the chart (deploy/k8s/render.sh)"
deploy/k8s/render.sh "$OUT/base.yaml" 2>/dev/null
if ! diff -u deploy/k8s/base/confab.yaml "$OUT/base.yaml" >"$OUT/base.diff"; then
  head -60 "$OUT/base.diff" >&2
  echo "check-deploy: deploy/k8s/base/confab.yaml is stale; run deploy/k8s/render.sh and commit it" >&2
  exit 1
fi

for overlay in dev prod; do
  step "kustomize build deploy/k8s/overlays/$overlay"
  "$BIN/kustomize" build "deploy/k8s/overlays/$overlay" >"$OUT/kustomize-$overlay.yaml"
done

manifests=("$OUT"/helm-*.yaml "$OUT"/kustomize-*.yaml)
total=0
for k in $K8S_VERSIONS; do
  step "kubeconform -strict, Kubernetes $k"
  "$BIN/kubeconform" -strict -summary -kubernetes-version "$k" \
    -schema-location "$ROOT/deploy/schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -skip ServiceMonitor,PrometheusRule \
    "${manifests[@]}" | tee "$OUT/kubeconform-$k.txt"
  valid=$(sed -n 's/.*Valid: \([0-9]*\),.*/\1/p' "$OUT/kubeconform-$k.txt")
  total=$((total + valid))
done

step "prometheus-operator objects, alerts and dashboards"
"$PYTHON" - services libs/core/src >"$OUT/metrics.txt" <<'PY'
import pathlib, re, sys
pattern = re.compile(r'\b(?:Counter|Gauge|Histogram|Summary)\(\s*"(confab_\w+)"', re.S)
names = set()
for top in sys.argv[1:]:
    for path in pathlib.Path(top).rglob("*.py"):
        if "tests" not in path.parts:
            names.update(pattern.findall(path.read_text()))
print("\n".join(sorted(names)))
PY
[[ -s "$OUT/metrics.txt" ]] || { echo "check-deploy: found no metric definitions" >&2; exit 1; }
monitoring=()
for f in "${manifests[@]}"; do
  grep -q '^kind: \(ServiceMonitor\|PrometheusRule\)' "$f" && monitoring+=("$f")
done
"$BIN/deploylint" monitoring -metrics "$OUT/metrics.txt" "${monitoring[@]}" | tee "$OUT/monitoring.txt"
crds=$(cat "${monitoring[@]}" | grep -c '^kind: \(ServiceMonitor\|PrometheusRule\)')

echo "check-deploy: OK: ${#manifests[@]} renders (helm default/prod/dev, kustomize dev/prod);" \
  "$total manifests valid against Kubernetes schemas (${K8S_VERSIONS// / and }," \
  "counted once per version), $crds prometheus-operator objects checked by deploylint"
