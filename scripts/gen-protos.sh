#!/usr/bin/env bash
# Generates the Python code of every proto into OUT (default: the committed
# confab-protos lib). proto-check generates into a temp dir and diffs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/libs/protos/src}
cd "$root"
mapfile -t files < <(cd protos && find confab -name '*.proto' | sort)
rm -rf "$out/confab"
mkdir -p "$out"
${UV:-uv} run --frozen python -m grpc_tools.protoc -I protos \
  --python_out="$out" --mypy_out="$out" \
  --grpc_python_out="$out" --mypy_grpc_out="$out" \
  "${files[@]}" 2>&1 | { grep -v '^Writing mypy to' || true; }
# Regular packages (not namespace ones), so mypy and importers agree.
find "$out/confab" -type d -exec touch {}/__init__.py \;
touch "$out/confab/py.typed"
