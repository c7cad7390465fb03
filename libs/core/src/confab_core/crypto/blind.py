"""Blind search tokens: a keyed hash per normalised word, so an index holds no words.

Equal words give equal tokens under one tenant's search key, which is all an
exact-word index needs; without the key a token says nothing, and two tenants'
tokens for one word differ. The price: only whole words match (no substring,
prefix or fuzzy search), and the token count per message still shows.
"""

from __future__ import annotations

import base64
import hmac
import unicodedata
from collections.abc import Iterable

# 128 bits: collisions between words of one tenant stay out of reach, index entries stay short.
TOKEN_BYTES = 16
_DOMAIN = b"confab.search.v1\x00"


def normalise(word: str) -> str:
    """Lower case without accents, so 'Café' and 'cafe' give one token."""
    word = word.strip()
    if word.isascii():
        # Most words, on every send: no accents to take off.
        return word.lower()
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def blind_tokens(search_key: bytes, words: Iterable[str]) -> list[str]:
    """One token per distinct non-empty normalised word, in first-seen order."""
    out: list[str] = []
    seen: set[str] = set()
    for word in words:
        norm = normalise(word)
        if not norm or norm in seen:
            continue
        seen.add(norm)
        # OpenSSL's one-shot HMAC: no Python-level hash objects per word.
        digest = hmac.digest(search_key, _DOMAIN + norm.encode("utf-8"), "sha256")
        out.append(base64.urlsafe_b64encode(digest[:TOKEN_BYTES]).rstrip(b"=").decode("ascii"))
    return out
