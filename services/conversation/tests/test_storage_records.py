"""Storage hands out typed records: no raw document crosses out of it.

Every public function and public method of every class in ``conversation.storage``
is read for its annotations; a parameter may take a document (a test helper, a
migration), but nothing may return one, and no record may hold one.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import typing
from collections.abc import Iterator, Mapping, MutableMapping
from datetime import UTC, datetime
from types import ModuleType, UnionType
from typing import Any

import pytest

import conversation.storage
from confab_core.crypto import DataKey, TenantKeys
from confab_core.mongo import Doc
from conversation.storage import messages
from conversation.storage.keys import TenantCipher


def _modules() -> list[ModuleType]:
    return [
        importlib.import_module(f"conversation.storage.{info.name}")
        for info in pkgutil.iter_modules(conversation.storage.__path__)
    ]


def _raw(tp: object) -> bool:
    """Whether a type is, or holds, an untyped document (or anything at all)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (dict, Mapping, MutableMapping) and args and args[-1] is Any:
        return True
    if origin is UnionType or origin is typing.Union or origin is not None:
        return any(_raw(a) for a in args)
    return False


def _public_functions() -> Iterator[tuple[str, object]]:
    for module in _modules():
        for name, value in vars(module).items():
            if name.startswith("_"):
                continue
            if inspect.isfunction(value) and value.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", value
            if inspect.isclass(value) and value.__module__ == module.__name__:
                for attr, member in vars(value).items():
                    if attr.startswith("_"):
                        continue
                    func = member.__func__ if isinstance(member, staticmethod) else member
                    if inspect.isfunction(func):
                        yield f"{module.__name__}.{name}.{attr}", func


def _records() -> Iterator[type]:
    for module in _modules():
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and value.__module__ == module.__name__
                and dataclasses.is_dataclass(value)
            ):
                yield value


def test_the_check_sees_a_document_wherever_it_hides() -> None:
    assert _raw(Doc) and _raw(Doc | None) and _raw(list[Doc]) and _raw(tuple[int, Doc])
    assert _raw(dict[str, tuple[Doc, int]]) and _raw(Mapping[str, Any]) and _raw(Any)
    assert not _raw(dict[str, int]) and not _raw(list[str] | None) and not _raw(bool)


def test_the_repositories_are_all_seen() -> None:
    names = {name.rsplit(".", 2)[-2] for name, _ in _public_functions()}
    assert {
        "ConversationRepo",
        "MemberRepo",
        "MessageRepo",
        "UserRepo",
        "OutboxWriter",
        "OutboxReader",
        "LeaseRepo",
        "Database",
    } <= names


@pytest.mark.parametrize(("name", "func"), list(_public_functions()))
def test_nothing_public_in_storage_returns_a_document(name: str, func: Any) -> None:
    returns = typing.get_type_hints(func).get("return")
    assert not _raw(returns), f"{name} returns {returns}: return a typed record instead"


@pytest.mark.parametrize("record", list(_records()), ids=lambda r: r.__name__)
def test_records_are_typed_all_the_way_down(record: type) -> None:
    hints = typing.get_type_hints(record)
    raw = {f.name: hints[f.name] for f in dataclasses.fields(record) if _raw(hints[f.name])}
    assert not raw, f"{record.__name__} holds untyped values: {raw}"


def test_a_sent_message_is_what_reading_it_back_gives() -> None:
    # Every field distinct, so a field given in the wrong place cannot go unseen.
    new = messages.NewMessage(
        id="m-id",
        conversation_id="c-id",
        sender_id="s-id",
        sender_name="Sender",
        kind=2,
        text="the text",
        client_msg_id="client-id",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        thread_root_id="root-id",
        mentions=("bob", "carol"),
        mentions_all=True,
        file=messages.FileAttachment("https://f.example/a", "a.pdf", "application/pdf", 7),
        search_terms=["the", "text"],
    )
    sent = new.at(41)
    keys = TenantKeys("t", DataKey.generate("k1"), {}, b"s" * 32)
    cipher = TenantCipher(TenantKeys("t", keys.current, {"k1": keys.current}, keys.search_key))
    stored = messages._document(new, 41, cipher)
    assert sent == messages._record(stored, cipher)
    assert "the text" not in str(stored) and "a.pdf" not in str(stored)
    assert (sent.seq, sent.deleted, sent.reply_count, sent.reactions) == (41, False, 0, ())
