# ruff: noqa: E501  (a table of generators reads best one per line)
"""Writes tests/pii/corpus.tsv: labelled chat lines with PII and look-alikes.

Run it again only to change the corpus (``uv run python tests/pii/make_corpus.py``);
the file is committed, and the seed keeps it the same run to run. Each line is
``expected<TAB>text``: ``expected`` lists ``kind=exact text`` pairs separated by
`` | ``, or ``-`` when the line holds no PII. Besides the generated lines, the
hand-written ones at the end are the cases a generator would not think of.
"""

from __future__ import annotations

import random
import string
from pathlib import Path

OUT = Path(__file__).with_name("corpus.tsv")
rng = random.Random(20261129)


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return digits
    raise AssertionError


def luhn_broken(prefix: str, length: int) -> str:
    good = luhn_complete(prefix, length)
    return good[:-1] + str((int(good[-1]) + 1 + rng.randrange(8)) % 10)


def group(digits: str, sizes: list[int], sep: str) -> str:
    out, at = [], 0
    for n in sizes:
        if at >= len(digits):
            break
        out.append(digits[at : at + n])
        at += n
    if at < len(digits):
        out.append(digits[at:])
    return sep.join(out)


CARD_BRANDS = [("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15),
               ("37", 15), ("6011", 16), ("65", 16), ("3530", 16), ("36", 14), ("4", 13),
               ("62", 19), ("4", 19)]  # fmt: skip


def card() -> str:
    prefix, length = rng.choice(CARD_BRANDS)
    digits = luhn_complete(prefix, length)
    style = rng.randrange(4)
    if style == 0:
        return digits
    if length == 15:
        return group(digits, [4, 6, 5], rng.choice([" ", "-"]))
    return group(digits, [4, 4, 4, 4, 4], rng.choice([" ", "-"]))


IBAN_SPECS = {"DE": "8n10n", "GB": "4a14n", "FR": "10n11c2n", "NL": "4a10n", "ES": "20n",
              "IT": "1a10n12c", "BE": "12n", "CH": "5n12c", "AT": "16n", "PL": "24n",
              "IE": "4a14n", "SE": "20n", "NO": "11n", "PT": "21n"}  # fmt: skip


def iban_body(spec: str) -> str:
    out, num = [], ""
    for ch in spec:
        if ch.isdigit():
            num += ch
            continue
        pool = {
            "n": string.digits,
            "a": string.ascii_uppercase,
            "c": string.ascii_uppercase + string.digits,
        }[ch]
        out.append("".join(rng.choice(pool) for _ in range(int(num))))
        num = ""
    return "".join(out)


def iban_check(country: str, bban: str) -> str:
    moved = bban + country + "00"
    value = int("".join(str(int(c, 36)) for c in moved))
    return f"{98 - value % 97:02d}"


def iban(valid: bool = True) -> str:
    country = rng.choice(list(IBAN_SPECS))
    bban = iban_body(IBAN_SPECS[country])
    check = iban_check(country, bban)
    if not valid:
        check = f"{(int(check) + 1 + rng.randrange(50)) % 100:02d}"
    compact = country + check + bban
    if rng.random() < 0.6:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


FIRST = ["anna", "bob", "chen", "dario", "eve", "fatima", "giulia", "hiro", "ines", "jamal",
         "karin", "liam", "maya", "noah", "olga", "pedro", "qi", "rosa", "sven", "tariq"]  # fmt: skip
DOMAINS = ["example.com", "mail.example.org", "acme.co.uk", "corp.example.net", "uni-bonn.de",
           "startup.io", "example.fr", "post.example.com.au"]  # fmt: skip


def email() -> str:
    name = rng.choice(FIRST)
    style = rng.randrange(5)
    local = [name, f"{name}.{rng.choice(FIRST)}", f"{name}+chat", f"{name}_{rng.randrange(99)}",
             f"{name[0]}.{rng.choice(FIRST)}{rng.randrange(10)}"][style]  # fmt: skip
    return f"{local}@{rng.choice(DOMAINS)}"


PHONES = [
    lambda: (
        f"+1 {rng.choice(['212', '415', '646', '312', '617', '206'])} {rng.choice(['555', '234', '867', '412'])} {rng.randint(1000, 9999)}"
    ),
    lambda: (
        f"({rng.choice(['415', '510', '718'])}) {rng.randint(201, 989)}-{rng.randint(1000, 9999)}"
    ),
    lambda: f"212-{rng.randint(201, 989)}-{rng.randint(1000, 9999)}",
    lambda: f"+44 20 7946 0{rng.randint(100, 999)}",
    lambda: f"07{rng.choice(['911', '400', '534', '825'])} {rng.randint(100000, 999999)}",
    lambda: f"+44 7{rng.choice(['911', '400', '534', '825'])} {rng.randint(100000, 999999)}",
    lambda: f"+49 30 {rng.randint(1000000, 9999999)}",
    lambda: f"030 {rng.randint(1000000, 9999999)}",
    lambda: (
        f"+33 6 {rng.randint(10, 59)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
    ),
    lambda: (
        f"06 {rng.randint(10, 59)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}"
    ),
    lambda: f"+61 2 {rng.randint(8000, 9999)} {rng.randint(1000, 9999)}",
    lambda: f"+91 98{rng.randint(100, 999)} {rng.randint(10000, 99999)}",
]


def phone() -> str:
    return rng.choice(PHONES)()


def ssn() -> str:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    sep = rng.choice(["-", "-", " "])
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def nino() -> str:
    first = rng.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
        second = "A"
    digits = f"{rng.randint(0, 999999):06d}"
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{first}{second}{digits}{suffix}"


def token(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


SECRETS = [
    lambda: "AKIA" + token(16, string.ascii_uppercase + string.digits),
    lambda: "ghp_" + token(36),
    lambda: "github_pat_" + token(22) + "_" + token(59),
    lambda: "xoxb-" + f"{rng.randint(10**11, 10**12)}-{rng.randint(10**11, 10**12)}-" + token(24),
    lambda: "sk_live_" + token(24),
    lambda: "rk_live_" + token(24),
    lambda: "AIza" + token(35, string.ascii_letters + string.digits + "_-"),
    lambda: "sk-proj-" + token(48),
    lambda: "sk-" + token(48),
    lambda: (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI"
        + token(20)
        + "."
        + token(43, string.ascii_letters + string.digits + "_-")
    ),
]


def secret() -> str:
    return rng.choice(SECRETS)()


TEMPLATES = {
    "card": ["my card is {}", "charge it to {} please", "Card: {} exp 09/27", "use {} for the refund",
             "the customer read out {} over the phone", "{} is the one on file"],
    "iban": ["send it to {}", "IBAN {} (business account)", "our bank details: {}",
             "please wire the deposit to {} by Friday", "new account {} replaces the old one"],
    "email": ["write to {}", "cc {} on that thread", "her address is {}", "{} asked about the invoice",
              "ping me at <{}> when done", "contact: {}."],
    "phone": ["call me on {}", "my mobile is {}", "reach the office at {} after 9", "tel. {}",
              "whatsapp {} if urgent", "the driver's number: {}"],
    "ssn": ["SSN {} for the background check", "my social is {}", "employee ssn: {}"],
    "nino": ["NI number {}", "national insurance: {}", "my NINO is {}"],
    "secret": ["here is the key {}", "export TOKEN={}", "oops I pasted {} in chat", "config: api_key = \"{}\""],
}  # fmt: skip
MAKERS = {
    "card": card,
    "iban": iban,
    "email": email,
    "phone": phone,
    "ssn": ssn,
    "nino": nino,
    "secret": secret,
}


def tracking() -> str:
    return rng.choice(
        [
            lambda: (
                "1Z" + token(6, string.ascii_uppercase + string.digits) + token(10, string.digits)
            ),
            lambda: "".join(rng.choice(string.digits) for _ in range(12)),
            lambda: "9400" + "".join(rng.choice(string.digits) for _ in range(18)),
            lambda: "JD" + "".join(rng.choice(string.digits) for _ in range(16)),
        ]
    )()


LOOKALIKES = [
    lambda: f"order #{rng.randint(10**7, 10**10)} shipped",
    lambda: f"Order {rng.randint(10**9, 10**11)} is delayed",
    lambda: f"invoice INV-{rng.randint(2020, 2026)}-{rng.randint(10000, 99999)}",
    lambda: f"tracking number {tracking()}",
    lambda: f"your parcel {tracking()} is out for delivery",
    lambda: f"meeting on {rng.randint(2020, 2027)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
    lambda: f"due {rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(2020, 2027)}",
    lambda: f"timestamp {rng.randint(1600000000, 1800000000)}",
    lambda: f"ts={rng.randint(1600000000000, 1800000000000)}",
    lambda: f"it costs ${rng.randint(1, 9999)}.{rng.randint(0, 99):02d}",
    lambda: f"total €{rng.randint(1000, 999999):,}.00",
    lambda: f"upgrade to v{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 200)}",
    lambda: f"build {rng.randint(1, 20)}.{rng.randint(0, 9)}.{rng.randint(10000, 30000)}.{rng.randint(100, 9999)}",
    lambda: f"server at 10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}",
    lambda: f"ticket {rng.randint(100000, 9999999)} reopened",
    lambda: f"user id {rng.randint(10**9, 10**10)}",
    lambda: f"ref {rng.randint(1000, 9999)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
    lambda: f"card ending {rng.randint(1000, 9999)} was declined",
    lambda: f"not a card: {group(luhn_broken('4', 16), [4, 4, 4, 4], ' ')}",
    lambda: f"bad number {luhn_broken('51', 16)}",
    lambda: f"account {iban(valid=False)} bounced",
    lambda: f"@{rng.choice(FIRST)} can you look?",
    lambda: "logo@2x.png is missing",
    lambda: f"npm i left-pad@{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
    lambda: f"ssn-like 000-{rng.randint(10, 99)}-{rng.randint(1000, 9999)} is invalid",
    lambda: f"area 666-{rng.randint(10, 99)}-{rng.randint(1000, 9999)} never issued",
    lambda: f"9{rng.randint(10, 99)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)} is an ITIN range",
    lambda: f"SKU AB-{rng.randint(100000, 999999)}-C",
    lambda: f"isbn 978-{rng.randint(0, 9)}-{rng.randint(100, 999)}-{rng.randint(10000, 99999)}-{rng.randint(0, 9)}",
    lambda: f"room {rng.randint(100, 999)}, floor {rng.randint(1, 30)}",
    lambda: f"{rng.randint(2, 40)} items at {rng.randint(1, 99)}.{rng.randint(0, 99):02d} each",
    lambda: f"the sk-learn docs mention {rng.randint(3, 9)} estimators",
    lambda: f"commit {token(40, '0123456789abcdef')}",
    lambda: f"uuid {token(8, '0123456789abcdef')}-{token(4, '0123456789abcdef')}-{token(4, '0123456789abcdef')}-{token(4, '0123456789abcdef')}-{token(12, '0123456789abcdef')}",
    lambda: f"lat {rng.uniform(-90, 90):.6f} lon {rng.uniform(-180, 180):.6f}",
    lambda: f"call at {rng.randint(1, 12)}:{rng.randint(0, 59):02d} pm tomorrow",
    lambda: f"extension {rng.randint(100, 9999)}",
    lambda: f"PIN {rng.randint(1000, 9999)}",
]  # fmt: skip

HAND = [
    ("-", "lunch at 12:30? the usual place"),
    ("-", "can someone review PR 4821 before the 3pm deploy"),
    ("-", "the quarterly numbers are 1,234,567 and 2,345,678"),
    ("-", "order 4111-2222-3333-4444 is a test id, not a card"),
    ("-", "AKIA is the prefix AWS uses for access keys"),
    ("-", "email me? no, use the ticket"),
    ("-", "the rocket@home project"),
    ("-", "version 2024.10.1 is out"),
    ("-", "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("-", "Call of Duty 2 scores 9/10"),
    ("card=4242 4242 4242 4242", "test card 4242 4242 4242 4242 works in staging"),
    ("card=378282246310005", "amex 378282246310005"),
    ("email=first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
    ("email=ADMIN@EXAMPLE.COM", "forward to ADMIN@EXAMPLE.COM now"),
    ("iban=gb82 west 1234 5698 7654 32", "lower case: gb82 west 1234 5698 7654 32"),
    ("iban=DE89370400440532013000", "DE89370400440532013000"),
    ("phone=4155552671", "text me 4155552671"),
    ("phone=+14155552671", "E.164: +14155552671"),
    ("ssn=123-45-6788", "ssn 123-45-6788 on the form"),
    # QQ is the prefix HMRC shows in examples and never issues.
    ("-", "example NINO QQ123456C"),
    (
        "secret=-----BEGIN RSA PRIVATE KEY-----\\nMIIEow\\n-----END RSA PRIVATE KEY-----",
        "key: -----BEGIN RSA PRIVATE KEY-----\\nMIIEow\\n-----END RSA PRIVATE KEY-----",
    ),
    ("email=ops@example.com | phone=+44 20 7946 0018", "ops@example.com or +44 20 7946 0018"),
    (
        "card=5555555555554444 | email=pay@example.org",
        "card 5555555555554444, receipt to pay@example.org",
    ),
]


def main() -> None:
    lines: list[tuple[str, str]] = []
    for kind, templates in TEMPLATES.items():
        count = {
            "card": 45,
            "iban": 40,
            "email": 40,
            "phone": 40,
            "ssn": 20,
            "nino": 20,
            "secret": 30,
        }[kind]
        for _ in range(count):
            value = MAKERS[kind]()
            lines.append((f"{kind}={value}", rng.choice(templates).format(value)))
    for _ in range(150):
        lines.append(("-", rng.choice(LOOKALIKES)()))
    for _ in range(20):
        a, b = rng.sample(list(MAKERS), 2)
        va, vb = MAKERS[a](), MAKERS[b]()
        lines.append((f"{a}={va} | {b}={vb}", f"first {va} and also {vb} fyi"))
    lines += HAND
    rng.shuffle(lines)
    OUT.write_text("".join(f"{e}\t{t}\n" for e, t in lines))
    print(f"{len(lines)} lines -> {OUT}")


if __name__ == "__main__":
    main()
