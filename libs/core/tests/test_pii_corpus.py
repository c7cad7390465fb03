"""Precision and recall on the labelled corpus (tests/pii/corpus.tsv), per kind.

The targets of issue 10: at least 0.95 for cards, emails and IBANs. The other
kinds are held at what they measure today, so a regression shows.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EVALUATE = Path(__file__).resolve().parents[3] / "tests" / "pii" / "evaluate.py"
TARGETS = {
    "card": 0.95,
    "email": 0.95,
    "iban": 0.95,
    "phone": 0.9,
    "ssn": 0.95,
    "nino": 0.95,
    "secret": 0.95,
}


def _evaluate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pii_evaluate", EVALUATE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_precision_and_recall_per_kind_meet_the_targets() -> None:
    ev = _evaluate()
    rows = ev.load()
    assert len(rows) >= 300
    scores, wrong, _ = ev.evaluate(rows)
    report = ev.table(scores) + "\n" + "\n".join(wrong)
    for kind, target in TARGETS.items():
        assert scores[kind].tp + scores[kind].fn >= 20, kind
        assert scores[kind].precision >= target, report
        assert scores[kind].recall >= target, report
