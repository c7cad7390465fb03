"""Topic guardrails and handoff triggers: pure rules, no I/O.

A question is judged by the tenant's (and the agent's) topic rules BEFORE any
model call, so a forbidden topic never reaches the model and never gets a model
answer. Text and rules are normalized the same way (Unicode compatibility form,
accents stripped, casefolded, whitespace collapsed), so "Remboursement",
"REMBOURSEMENT" and "rembôursement" are one word; phrases and keywords match on
word boundaries only, so the keyword "bet" does not match "better".
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from confab.conversation.v1 import settings_pb2 as spb

# What an admin may write as one pattern (the settings service validates the
# same bound on save); longer ones are skipped rather than trusted.
MAX_PATTERN_CHARS = 200

_SPACES = re.compile(r"\s+")
# Typographic quotes and dashes as their ASCII twins, so "can\u2019t" is "can't".
_PUNCT = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'", "\u2013": "-", "\u2014": "-"}
)


def normalize(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_PUNCT))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", stripped.casefold()).strip()


def _term_regex(terms: Iterable[str]) -> re.Pattern[str] | None:
    normalized = sorted({n for n in (normalize(t) for t in terms) if n}, key=len, reverse=True)
    if not normalized:
        return None
    # Word boundaries that also hold next to punctuation inside a term ("e-mail").
    alternatives = "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in normalized)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def _pattern_regexes(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for p in patterns:
        if not p or len(p) > MAX_PATTERN_CHARS:
            continue
        try:
            compiled.append(re.compile(p, re.IGNORECASE))
        except re.error:
            # Validated on save; a rule saved before validation existed must not
            # stop the bot answering.
            continue
    return tuple(compiled)


@dataclass(frozen=True)
class TopicMatcher:
    name: str
    terms: re.Pattern[str] | None
    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def of(cls, rule: spb.TopicRule) -> TopicMatcher:
        return cls(
            name=rule.name,
            terms=_term_regex([*rule.phrases, *rule.keywords]),
            patterns=_pattern_regexes(rule.patterns),
        )

    def matches(self, raw: str, normalized: str) -> bool:
        if self.terms is not None and self.terms.search(normalized):
            return True
        # Patterns see both forms: an admin may have written accents or not.
        return any(p.search(raw) or p.search(normalized) for p in self.patterns)


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    FORBIDDEN = "forbidden"
    OFF_TOPIC = "off_topic"
    PERSON = "person"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    # The topic that decided it (forbidden or allowed), "" otherwise.
    topic: str = ""

    @property
    def answerable(self) -> bool:
        return self.verdict is Verdict.ALLOWED


# Asking for a person, in the languages tenants' users write most. Normalized
# like the question, so accents and case do not matter.
PERSON_PHRASES: tuple[str, ...] = (
    # English
    "talk to a human",
    "talk to a person",
    "talk to someone",
    "talk to a real person",
    "speak to a human",
    "speak to a person",
    "speak to someone",
    "speak with a human",
    "speak with a person",
    "speak with someone",
    "talk with a human",
    "talk with a person",
    "real person",
    "real human",
    "human agent",
    "live agent",
    "live person",
    "live chat with a person",
    "customer service agent",
    "customer service representative",
    "support agent",
    "a representative",
    "an operator",
    "connect me to an agent",
    "transfer me to an agent",
    "get me a human",
    "i want a human",
    "i need a human",
    "not a bot",
    "stop the bot",
    # French
    "parler a un humain",
    "parler a une personne",
    "parler a quelqu'un",
    "parler a un conseiller",
    "parler a un agent",
    "un vrai humain",
    "une vraie personne",
    # German
    "mit einem menschen",
    "mit einer person sprechen",
    "mit einem mitarbeiter",
    "echten menschen",
    # Spanish
    "hablar con una persona",
    "hablar con un humano",
    "hablar con alguien",
    "hablar con un agente",
    "agente humano",
    "persona real",
    # Italian
    "parlare con un operatore",
    "parlare con una persona",
    "operatore umano",
    # Portuguese
    "falar com um atendente",
    "falar com uma pessoa",
    "falar com um humano",
    # Dutch
    "met een mens",
    "met een medewerker",
)
_PERSON = _term_regex(PERSON_PHRASES)

# The model saying it cannot help: its reply goes out, then the ticket hands off.
CANNOT_HELP_PHRASES: tuple[str, ...] = (
    "i can't help with",
    "i cannot help with",
    "i can't help you with",
    "i cannot help you with",
    "i'm unable to help",
    "i am unable to help",
    "i'm not able to help",
    "i am not able to help",
    "i'm unable to assist",
    "i am unable to assist",
    "i can't assist with",
    "i cannot assist with",
    "i'm not able to assist",
    "i don't have access to",
    "i do not have access to",
    "i don't have that information",
    "i do not have that information",
    "i'm not sure i can help",
    "beyond what i can help with",
    "outside what i can help with",
    "a human agent",
    "contact our support team",
    "je ne peux pas vous aider",
    "ich kann ihnen dabei nicht helfen",
    "no puedo ayudarte con",
    "no puedo ayudarle con",
)
_CANNOT_HELP = _term_regex(CANNOT_HELP_PHRASES)


@dataclass(frozen=True)
class Guardrails:
    """One agent's topic rules: the tenant's topics plus the agent's own."""

    allowed: tuple[TopicMatcher, ...]
    forbidden: tuple[TopicMatcher, ...]
    model_check: bool

    @classmethod
    def of(cls, *topics: spb.Topics) -> Guardrails:
        return cls(
            allowed=tuple(TopicMatcher.of(r) for t in topics for r in t.allowed),
            forbidden=tuple(TopicMatcher.of(r) for t in topics for r in t.forbidden),
            model_check=any(t.model_check for t in topics),
        )

    @classmethod
    def none(cls) -> Guardrails:
        return cls(allowed=(), forbidden=(), model_check=False)

    @property
    def allowed_topics(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.allowed)

    def judge(self, question: str) -> Decision:
        """Forbidden first (it must never reach the model, whatever else the
        question asks), then a request for a person, then the allowed list."""
        normalized = normalize(question)
        for m in self.forbidden:
            if m.matches(question, normalized):
                return Decision(Verdict.FORBIDDEN, m.name)
        if asks_for_person(question):
            return Decision(Verdict.PERSON)
        if not self.allowed:
            return Decision(Verdict.ALLOWED)
        for m in self.allowed:
            if m.matches(question, normalized):
                return Decision(Verdict.ALLOWED, m.name)
        return Decision(Verdict.OFF_TOPIC)

    def reply_ok(self, reply_so_far: str) -> bool:
        """The reply check (StreamRequest.check): a reply that drifts into a
        forbidden topic is stopped before it is posted."""
        normalized = normalize(reply_so_far)
        return not any(m.matches(reply_so_far, normalized) for m in self.forbidden)


def asks_for_person(text: str) -> bool:
    return _PERSON is not None and _PERSON.search(normalize(text)) is not None


def cannot_help(reply: str) -> bool:
    return _CANNOT_HELP is not None and _CANNOT_HELP.search(normalize(reply)) is not None


def topic_check_prompt(topics: Sequence[str]) -> str:
    """The system prompt of the optional model-based check: one word back."""
    listed = "; ".join(topics) if topics else "anything"
    return (
        "You check whether a customer's question is about one of these topics: "
        f"{listed}. Answer with exactly one word: YES if it is, NO if it is not."
    )


def topic_check_passed(answer: str) -> bool:
    # Anything but a clear NO passes: the rules already allowed the question, and
    # a chatty model must not hand off every ticket.
    return not normalize(answer).startswith("no")
