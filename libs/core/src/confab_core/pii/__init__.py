"""PII detection: pure functions over text, shared by the conversation service
(which applies the tenant's policy before storing) and the bot (which masks prompts)."""

from __future__ import annotations

from confab_core.pii.detect import (
    CARD,
    EMAIL,
    IBAN,
    KINDS,
    NINO,
    PHONE,
    PHONE_REGIONS,
    SECRET,
    SSN,
    Finding,
    mask,
    placeholder,
    scan,
)

__all__ = [
    "CARD",
    "EMAIL",
    "IBAN",
    "KINDS",
    "NINO",
    "PHONE",
    "PHONE_REGIONS",
    "SECRET",
    "SSN",
    "Finding",
    "mask",
    "placeholder",
    "scan",
]
