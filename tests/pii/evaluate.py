"""Precision and recall of confab_core.pii on tests/pii/corpus.tsv, per kind.

``uv run --frozen python tests/pii/evaluate.py`` prints the table (docs/security.md
quotes it); libs/core/tests/test_pii_corpus.py asserts the targets. A finding
counts as right when its kind and its exact text are among the line's labels.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from confab_core.pii import KINDS, scan

CORPUS = Path(__file__).with_name("corpus.tsv")


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def load(path: Path = CORPUS) -> list[tuple[set[tuple[str, str]], str]]:
    rows = []
    for line in path.read_text().splitlines():
        expected, text = line.split("\t", 1)
        labels = set()
        if expected != "-":
            for pair in expected.split(" | "):
                kind, value = pair.split("=", 1)
                labels.add((kind, value.replace("\\n", "\n")))
        rows.append((labels, text.replace("\\n", "\n")))
    return rows


def evaluate(
    rows: list[tuple[set[tuple[str, str]], str]],
) -> tuple[dict[str, Score], list[str], float]:
    """Scores per kind, the lines it got wrong, and microseconds per line."""
    scores = {kind: Score() for kind in KINDS}
    wrong: list[str] = []
    # Warm: the first parse per region loads libphonenumber's metadata.
    for _, text in rows:
        scan(text)
    started = time.perf_counter()
    found_all = [scan(text) for _, text in rows]
    elapsed = time.perf_counter() - started
    for (labels, text), findings in zip(rows, found_all, strict=True):
        got = {(f.kind, text[f.start : f.end]) for f in findings}
        for kind, _ in got & labels:
            scores[kind].tp += 1
        for kind, _ in got - labels:
            scores[kind].fp += 1
        for kind, _ in labels - got:
            scores[kind].fn += 1
        if got != labels:
            wrong.append(f"{text!r}: expected {sorted(labels)}, got {sorted(got)}")
    return scores, wrong, elapsed / len(rows) * 1e6


def table(scores: dict[str, Score]) -> str:
    out = ["| kind | labelled | found | precision | recall |", "| --- | --- | --- | --- | --- |"]
    for kind, s in scores.items():
        out.append(
            f"| {kind} | {s.tp + s.fn} | {s.tp + s.fp} | {s.precision:.3f} | {s.recall:.3f} |"
        )
    return "\n".join(out)


def main() -> None:
    rows = load()
    scores, wrong, micros = evaluate(rows)
    print(f"{len(rows)} lines, {micros:.0f} µs per line on average\n")
    print(table(scores))
    if wrong and "-v" in sys.argv:
        print("\nwrong:")
        print("\n".join(wrong))


if __name__ == "__main__":
    main()
