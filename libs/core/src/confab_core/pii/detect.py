"""The detectors: precompiled patterns, cheap pre-checks, then the exact checks
(Luhn, the IBAN checksum, the SSN area rules, libphonenumber's validity).

Most chat messages have no digit and no ``@``; for those a scan is two
``str`` searches and one regex search for secret prefixes. Detectors run in
priority order (secrets, emails, IBANs, cards, SSNs, NINOs, phones) and a later
one never claims text an earlier one found, so a card number is not also a phone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import re_util

# libphonenumber compiles its metadata's patterns on every use, and they outnumber
# the re module's cache: without its own cache a parse costs ~150 µs, with it ~20.
re_util.enable_pattern_cache()

EMAIL = "email"
PHONE = "phone"
CARD = "card"
IBAN = "iban"
SSN = "ssn"
NINO = "nino"
SECRET = "secret"

# Every kind a tenant policy may name, in the order reports list them.
KINDS: tuple[str, ...] = (EMAIL, PHONE, CARD, IBAN, SSN, NINO, SECRET)

# National numbers (no + or 00) are tried against these regions in order; an
# international number is valid whatever the region. The most common regions of
# Confab's tenants; each one tried costs a libphonenumber parse.
PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR")
# Regions of the North American Numbering Plan: no trunk prefix 0.
_NANP = frozenset({"US", "CA"})


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int
    # What the placeholder may show of it: the last four of a card or an IBAN.
    tail: str = ""


def placeholder(f: Finding) -> str:
    """What ``mask`` puts in place of a finding: the kind, and for cards and
    IBANs the last four characters, which people need to tell accounts apart."""
    if f.tail:
        return f"[{f.kind} ending {f.tail}]"
    return f"[{f.kind}]"


def mask(text: str, findings: Iterable[Finding]) -> str:
    out: list[str] = []
    at = 0
    for f in sorted(findings, key=lambda f: f.start):
        out.append(text[at : f.start])
        out.append(placeholder(f))
        at = f.end
    out.append(text[at:])
    return "".join(out)


# --- secrets -----------------------------------------------------------------

_SECRET = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|.*)"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{36,255}\b"
    r"|\bgithub_pat_[A-Za-z0-9_]{22,255}\b"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\b(?:sk|rk)_live_[A-Za-z0-9]{16,}"
    r"|\bAIza[0-9A-Za-z_\-]{35}"
    r"|\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
    re.DOTALL,
)


# Every secret pattern starts with one of these: a few substring searches spare
# most messages the pattern's scan.
_SECRET_HINTS = (
    "-----BEGIN",
    "AKIA",
    "ASIA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "_live_",
    "AIza",
    "sk-",
    "eyJ",
)


def _secrets(text: str) -> Iterable[Finding]:
    if not any(hint in text for hint in _SECRET_HINTS):
        return
    for m in _SECRET.finditer(text):
        yield Finding(SECRET, m.start(), m.end())


# --- emails ------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![\w-])"
)
# name@2x.png is an image at twice the resolution, not an address.
_FILE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "pdf", "js", "css"})


def _emails(text: str) -> Iterable[Finding]:
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        if m.group(1).lower() not in _FILE_EXTENSIONS:
            yield Finding(EMAIL, m.start(), m.end())


# --- IBANs -------------------------------------------------------------------

_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", re.IGNORECASE)
# Lengths per country (ISO 13616 registry), for the countries that issue IBANs.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def _iban_checksum_ok(compact: str) -> bool:
    moved = compact[4:] + compact[:4]
    # Letters count as 10..35; the whole number mod 97 is 1 for a valid IBAN.
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ibans(text: str) -> Iterable[Finding]:
    for m in _IBAN.finditer(text):
        raw = m.group(0)
        length = _IBAN_LENGTHS.get(raw[:2].upper())
        if length is None:
            continue
        # The pattern may run on into the next words ("... 4757 replaces"): the
        # country's length says where the IBAN ends.
        taken = end = 0
        while end < len(raw) and taken < length:
            taken += raw[end] != " "
            end += 1
        if taken != length or (m.start() + end < len(text) and text[m.start() + end].isalnum()):
            continue
        compact = raw[:end].replace(" ", "").upper()
        if _iban_checksum_ok(compact):
            yield Finding(IBAN, m.start(), m.start() + end, compact[-4:])


# --- cards -------------------------------------------------------------------

# 13 to 19 digits, in one run or in groups split by one kind of separator.
_CARD = re.compile(r"(?<![\d.,/-])\d(?:[ -]?\d){12,18}(?!\d|[.,/-]\d)")
_CARD_PREFIX = re.compile(
    r"4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9]|2)"
    r"|35(?:2[89]|[3-8]\d)|5[06-9]|6\d"
)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _cards(text: str) -> Iterable[Finding]:
    for m in _CARD.finditer(text):
        raw = m.group(0)
        if " " in raw and "-" in raw:
            continue
        digits = raw.replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and _luhn(digits):
            yield Finding(CARD, m.start(), m.end(), digits[-4:])


# --- national ids ------------------------------------------------------------

_SSN = re.compile(r"(?<![\d-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\d-])")
# Numbers the SSA never issues, or published as examples and so never a person's.
_SSN_NEVER = frozenset({"078051120", "219099999", "123456789"})


def _ssns(text: str) -> Iterable[Finding]:
    for m in _SSN.finditer(text):
        area, group, serial = m.group(1), m.group(3), m.group(4)
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        if area + group + serial in _SSN_NEVER:
            continue
        yield Finding(SSN, m.start(), m.end())


# First letters D, F, I, Q, U, V and second letters D, F, I, O, Q, U, V are never
# used, nor the prefixes BG, GB, KN, NK, NT, TN, ZZ; the suffix is A to D.
_NINO = re.compile(
    r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"( ?)\d{2}\1\d{2}\1\d{2}\1[A-D]\b",
    re.IGNORECASE,
)


def _ninos(text: str) -> Iterable[Finding]:
    for m in _NINO.finditer(text):
        yield Finding(NINO, m.start(), m.end())


# --- phones ------------------------------------------------------------------

# A run of digits that may be a phone number: an optional + or (, then digits and
# separators. Not after a word character, #, $, a currency sign or a version dot.
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w@#$€£¥+./:-])(?:\+|\()?\d[\d\s.()\-/]{5,22}\d(?![\w@/]|\.\d)"
)
_FORMATTED = re.compile(r"^\+|^00|^\(\d+\)|\d[\s.\-]\d")
_DATE_OR_IP = re.compile(
    r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b|^\d{1,3}(?:\.\d{1,3}){3}$"
)
_PHONE_WORDS = re.compile(
    r"(?:phone|tel|mobile|cell|call|whatsapp|sms|text me|reach me|ring|fax|my number|mob)"
    r"\W*\S*\W*$",
    re.IGNORECASE,
)


def _phone_regions(candidate: str, international: bool) -> tuple[str, ...]:
    """The regions worth a parse (each costs ~150 µs): any one for an international
    number; North American numbers never start with a trunk 0, the others' do."""
    if international:
        return PHONE_REGIONS[:1]
    leading = candidate.lstrip("(")[:1]
    wanted = [r for r in PHONE_REGIONS if (r in _NANP) != (leading == "0")]
    return tuple(wanted) or PHONE_REGIONS


def _phone_digits(candidate: str) -> int:
    return sum(ch.isdigit() for ch in candidate)


def _phones(text: str) -> Iterable[Finding]:
    for m in _PHONE_CANDIDATE.finditer(text):
        cand = m.group(0).rstrip(" .-/(")
        if not 7 <= _phone_digits(cand) <= 15 or _DATE_OR_IP.search(cand):
            continue
        international = cand.startswith(("+", "00"))
        # An unformatted run of digits is an order or tracking number more often
        # than a phone number, unless the words before it say otherwise.
        if not (international or _FORMATTED.search(cand)) and not _PHONE_WORDS.search(
            text[max(0, m.start() - 24) : m.start()]
        ):
            continue
        regions = _phone_regions(cand, international)
        for region in regions:
            found = next(
                iter(
                    phonenumbers.PhoneNumberMatcher(
                        cand, region, leniency=phonenumbers.Leniency.VALID
                    )
                ),
                None,
            )
            if found is not None:
                yield Finding(PHONE, m.start() + found.start, m.start() + found.end)
                break


_DETECTORS: tuple[tuple[str, Callable[[str], Iterable[Finding]]], ...] = (
    (SECRET, _secrets),
    (EMAIL, _emails),
    (IBAN, _ibans),
    (CARD, _cards),
    (SSN, _ssns),
    (NINO, _ninos),
    (PHONE, _phones),
)
# The fewest digits each detector can match: a message with fewer skips it.
_MIN_DIGITS = {SECRET: 0, EMAIL: 0, IBAN: 6, CARD: 13, SSN: 9, NINO: 6, PHONE: 7}
_NON_DIGIT = re.compile(r"\D+")


def scan(text: str, kinds: Collection[str] = ()) -> list[Finding]:
    """The PII in ``text`` of the given kinds (empty: all), in text order, never
    overlapping."""
    wanted = kinds or KINDS
    digits = len(_NON_DIGIT.sub("", text))
    found: list[Finding] = []
    for kind, detect in _DETECTORS:
        if kind not in wanted or digits < _MIN_DIGITS[kind]:
            continue
        for f in detect(text):
            if not any(f.start < o.end and o.start < f.end for o in found):
                found.append(f)
    found.sort(key=lambda f: f.start)
    return found
