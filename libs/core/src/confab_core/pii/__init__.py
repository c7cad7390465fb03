"""PII detection: pure functions over text, shared by the conversation service
(which applies the tenant's policy before storing) and the bot (which masks prompts)."""

from __future__ import annotations

EMAIL = "email"
PHONE = "phone"
CARD = "card"
IBAN = "iban"
SSN = "ssn"
NINO = "nino"
SECRET = "secret"

# Every kind a tenant policy may name, in the order reports list them.
KINDS: tuple[str, ...] = (EMAIL, PHONE, CARD, IBAN, SSN, NINO, SECRET)
