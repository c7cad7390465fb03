"""Builds standalone, strict Kubernetes JSON schemas for kubeconform, offline.

Input: a `vX.Y.Z-local-strict` folder of the kubernetes-validate wheel (PyPI),
whose schemas point into a shared `_definitions.json`. Output: one schema per
kind, every $ref inlined (kubeconform loads each file on its own), descriptions
dropped to keep them small. Only the kinds Confab renders are written; a kind
missing here makes kubeconform fail loudly ("could not find schema"), which is
the cue to add it to KINDS.

Usage: python standalone.py SRC_DIR OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# <kind>-<group>-<version>.json, kubeconform's {{.ResourceKind}}{{.KindSuffix}}.
KINDS = [
    "configmap-v1",
    "deployment-apps-v1",
    "horizontalpodautoscaler-autoscaling-v2",
    "ingress-networking-v1",
    "namespace-v1",
    "networkpolicy-networking-v1",
    "persistentvolumeclaim-v1",
    "poddisruptionbudget-policy-v1",
    "secret-v1",
    "service-v1",
    "serviceaccount-v1",
    "statefulset-apps-v1",
    "job-batch-v1",
]
DROP = {"description", "$id", "$schema"}


def main(src: Path, out: Path) -> None:
    defs: dict[str, Any] = json.loads((src / "_definitions.json").read_text())["$defs"]
    out.mkdir(parents=True, exist_ok=True)
    memo: dict[str, Any] = {}

    def resolve(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(n, stack) for n in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in stack:  # recursive type (none in the kinds above): accept anything
                return {}
            if name not in memo:
                memo[name] = resolve(defs[name], (*stack, name))
            return memo[name]
        return {k: resolve(v, stack) for k, v in node.items() if k not in DROP}

    for kind in KINDS:
        schema = json.loads((src / f"{kind}.json").read_text())
        full = resolve(schema, ())
        full["$schema"] = schema.get("$schema", "https://json-schema.org/draft/2020-12/schema")
        (out / f"{kind}.json").write_text(json.dumps(full, sort_keys=True, separators=(",", ":")))
    sys.stdout.write(f"standalone.py: {len(KINDS)} schemas in {out}\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
