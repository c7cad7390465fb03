"""The topic rules against the committed labelled question sets (pure logic)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format

from bot.guardrails import Guardrails, Verdict, asks_for_person, cannot_help, normalize
from confab.conversation.v1 import settings_pb2 as spb

DATA = Path(__file__).parent / "data" / "guardrails"
TENANTS = ("arena", "freshcart")
# What the labels say the rules should decide.
EXPECTED = {
    "allowed": Verdict.ALLOWED,
    "forbidden": Verdict.FORBIDDEN,
    "off_topic": Verdict.OFF_TOPIC,
    "person": Verdict.PERSON,
}
# The floor for everything but forbidden (which must be perfect); docs/bot.md
# reports the measured figure.
MIN_ACCURACY = 0.9


def tenant_rules(name: str) -> Guardrails:
    settings = json_format.Parse((DATA / f"{name}.settings.json").read_text(), spb.TenantSettings())
    agent = settings.agents[0]
    return Guardrails.of(settings.topics, agent.topics)


def questions(name: str) -> list[tuple[str, str]]:
    lines = (DATA / f"{name}.questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [(row["question"], row["label"]) for row in map(json.loads, lines) if row]


def test_the_set_is_big_enough() -> None:
    total = 0
    for name in TENANTS:
        rows = questions(name)
        assert len(rows) >= 50
        assert {label for _, label in rows} == set(EXPECTED)
        total += len(rows)
    assert total >= 100


@pytest.mark.parametrize("name", TENANTS)
def test_every_forbidden_question_is_refused_by_the_rules_alone(name: str) -> None:
    rules = tenant_rules(name)
    missed = [
        q
        for q, label in questions(name)
        if label == "forbidden" and rules.judge(q).verdict is not Verdict.FORBIDDEN
    ]
    assert missed == []


@pytest.mark.parametrize("name", TENANTS)
def test_accuracy_on_the_rest(name: str) -> None:
    rules = tenant_rules(name)
    rest = [(q, label) for q, label in questions(name) if label != "forbidden"]
    wrong = [
        (q, label, rules.judge(q).verdict.value)
        for q, label in rest
        if rules.judge(q).verdict is not EXPECTED[label]
    ]
    accuracy = 1 - len(wrong) / len(rest)
    print(f"{name}: {len(rest) - len(wrong)}/{len(rest)} = {accuracy:.1%}; wrong: {wrong}")
    assert accuracy >= MIN_ACCURACY, wrong


def rules(**forbidden: list[str]) -> Guardrails:
    return Guardrails.of(
        spb.Topics(
            allowed=[spb.TopicRule(name="billing", keywords=["refund", "invoice"])],
            forbidden=[spb.TopicRule(name="gambling", **forbidden)],  # type: ignore[arg-type]
        )
    )


def test_normalization_folds_case_accents_and_spaces() -> None:
    assert normalize("  Rembôursement\tÉCHÉANCE  ") == "remboursement echeance"
    assert normalize("can\u2019t") == "can't"


def test_keywords_and_phrases_match_whole_words_only() -> None:
    r = rules(keywords=["bet"], phrases=["place a wager"])
    assert r.judge("Can I BET on it?").verdict is Verdict.FORBIDDEN
    assert r.judge("is a refund better than an invoice").verdict is Verdict.ALLOWED
    assert r.judge("where do I place   a  WAGER").verdict is Verdict.FORBIDDEN
    assert r.judge("placing a wagerless refund").verdict is Verdict.ALLOWED


def test_patterns_are_case_insensitive_and_see_accents_either_way() -> None:
    r = rules(patterns=[r"\bcasin[oò]s?\b"])
    assert r.judge("Best CASINOS for a refund?").verdict is Verdict.FORBIDDEN
    assert r.judge("best casinò").verdict is Verdict.FORBIDDEN


def test_a_broken_or_oversized_pattern_is_skipped_not_fatal() -> None:
    r = rules(patterns=["(unclosed", "x" * 201, "poker"])
    assert r.judge("poker refund").verdict is Verdict.FORBIDDEN
    assert r.judge("(unclosed refund").verdict is Verdict.ALLOWED


def test_forbidden_wins_over_a_request_for_a_person_and_over_allowed() -> None:
    r = rules(keywords=["bet"])
    assert r.judge("talk to a human about my refund bet").verdict is Verdict.FORBIDDEN
    assert r.judge("talk to a human about my refund").verdict is Verdict.PERSON


def test_without_allowed_topics_everything_not_forbidden_is_allowed() -> None:
    r = Guardrails.of(spb.Topics(forbidden=[spb.TopicRule(name="x", keywords=["poker"])]))
    assert r.judge("what is the meaning of life").verdict is Verdict.ALLOWED
    assert r.judge("poker").verdict is Verdict.FORBIDDEN
    assert Guardrails.none().judge("poker").verdict is Verdict.ALLOWED


def test_tenant_and_agent_topics_add_up() -> None:
    r = Guardrails.of(
        spb.Topics(forbidden=[spb.TopicRule(name="a", keywords=["poker"])]),
        spb.Topics(forbidden=[spb.TopicRule(name="b", keywords=["dice"])], model_check=True),
    )
    assert r.judge("dice").topic == "b"
    assert r.judge("poker").topic == "a"
    assert r.model_check


def test_the_reply_check_stops_forbidden_content() -> None:
    r = rules(keywords=["bet"])
    assert r.reply_ok("Your refund is on its way.")
    assert not r.reply_ok("You could bet on the final instead.")


@pytest.mark.parametrize(
    "text",
    ["Can I talk to a HUMAN?", "je veux parler à quelqu\u2019un", "Quiero hablar con una persona"],
)
def test_person_requests_in_several_languages(text: str) -> None:
    assert asks_for_person(text)


def test_person_phrases_do_not_fire_on_ordinary_questions() -> None:
    assert not asks_for_person("How do I add a person to my team?")


def test_the_model_saying_it_cannot_help_is_detected() -> None:
    assert cannot_help("I\u2019m sorry, but I can\u2019t help with refunds for other shops.")
    assert cannot_help("I do not have access to your bank statement.")
    assert not cannot_help("Your refund was sent on Monday.")
