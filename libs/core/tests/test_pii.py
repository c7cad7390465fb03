"""The PII detectors and masking: pure logic."""

from __future__ import annotations

import pytest

from confab_core.pii import CARD, EMAIL, IBAN, NINO, PHONE, SECRET, SSN, mask, scan


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in scan(text)]


def test_mask_forms() -> None:
    text = (
        "card 4242 4242 4242 4242, iban GB82 WEST 1234 5698 7654 32, mail a.b@example.com, "
        "call +44 20 7946 0018, ssn 123-45-6788, nino AB123456C, key AKIAIOSFODNN7EXAMPLE"
    )
    assert mask(text, scan(text)) == (
        "card [card ending 4242], iban [iban ending 5432], mail [email], "
        "call [phone], ssn [ssn], nino [nino], key [secret]"
    )


@pytest.mark.parametrize(
    "text",
    [
        "4242 4242 4242 4241",  # Luhn fails
        "1234567812345670",  # Luhn holds, but no card network issues 12...
        "GB82 WEST 1234 5698 7654 33",  # IBAN checksum fails
        "000-12-3456",  # SSN area 000
        "666-12-3456",  # SSN area 666
        "912-12-3456",  # SSN area 9xx (ITINs)
        "123-00-4567",  # SSN group 00
        "123-45-0000",  # SSN serial 0000
        "QQ123456C",  # NINO prefix never issued
        "GB123456A",  # NINO prefix GB never issued
        "logo@2x.png",
        "order 4155552671",  # a bare digit run without a phone word
        "2024-05-12 10:30",
        "192.168.100.200",
        "v10.0.19041.1234",
        "sk-learn is not a key",
    ],
)
def test_look_alikes_are_not_pii(text: str) -> None:
    assert kinds(text) == []


def test_a_card_is_not_also_a_phone_and_spans_never_overlap() -> None:
    assert kinds("pay with 5555 5555 5555 4444 today") == [(CARD, "5555 5555 5555 4444")]
    assert kinds("ops@example.com, +1 212 555 0199") == [
        (EMAIL, "ops@example.com"),
        (PHONE, "+1 212 555 0199"),
    ]


def test_an_iban_ends_where_its_country_says() -> None:
    assert kinds("to BE13 1508 1426 4757 replaces the old") == [(IBAN, "BE13 1508 1426 4757")]
    assert kinds("lower gb82 west 1234 5698 7654 32") == [(IBAN, "gb82 west 1234 5698 7654 32")]


def test_a_pem_key_is_masked_to_its_end_line_or_to_the_end() -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"
    assert kinds(f"here {pem} thanks") == [(SECRET, pem)]
    assert kinds("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl") == [
        (SECRET, "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl")
    ]


def test_kinds_filter_and_national_ids() -> None:
    text = "ssn 123-45-6788 nino AB 12 34 56 C card 4242424242424242"
    assert [f.kind for f in scan(text, {SSN, NINO})] == [SSN, NINO]
    assert [f.kind for f in scan(text)] == [SSN, NINO, CARD]


def test_phone_numbers_need_a_format_a_plus_or_a_phone_word() -> None:
    assert kinds("(415) 555-2671") == [(PHONE, "(415) 555-2671")]
    assert kinds("text me 4155552671") == [(PHONE, "4155552671")]
    assert kinds("ruf an: 030 12345678") == [(PHONE, "030 12345678")]
    assert kinds("+33 6 12 34 56 78") == [(PHONE, "+33 6 12 34 56 78")]
