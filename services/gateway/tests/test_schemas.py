"""Shapes and sizes the gateway refuses before any service sees them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from gateway import schemas
from gateway.realtime import sockets

FILE = {
    "url": "https://files.example.com/a.pdf",
    "name": "a.pdf",
    "content_type": "application/pdf",
    "size_bytes": 10,
}

VALID: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (schemas.UpdateConversationIn, {"title": "t"}),
    (schemas.UpdateConversationIn, {"topic": ""}),
    (schemas.UpdateConversationIn, {"title": "x" * 200, "description": "d" * 2000}),
    (schemas.AddMembersIn, {"user_ids": ["u2"]}),
    (schemas.AddMembersIn, {"user_ids": ["u" * 128] * 1000, "role": "observer"}),
    (schemas.UpdateMemberRoleIn, {"role": "admin"}),
    (schemas.EditMessageIn, {"text": "x" * 4000}),
    (schemas.ToggleReactionIn, {"emoji": "👍"}),
    (schemas.ToggleReactionIn, {"emoji": ":" + "x" * 62 + ":"}),
    (schemas.SendMessageIn, {"text": "hi", "thread_root_id": "m1"}),
    (schemas.SendMessageIn, {"text": "", "kind": "file", "file": FILE}),
    (schemas.SendMessageIn, {"text": "see", "file": {**FILE, "url": "http://h:8080/x?y=1"}}),
    (schemas.MarkReadIn, {"seq": 2**63 - 1}),
]

INVALID: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (schemas.UpdateConversationIn, {}),
    (schemas.UpdateConversationIn, {"title": None}),
    (schemas.UpdateConversationIn, {"title": "x" * 201}),
    (schemas.UpdateConversationIn, {"description": "x" * 2001}),
    (schemas.UpdateConversationIn, {"topic": "x" * 251}),
    (schemas.UpdateConversationIn, {"title": "t", "archived": True}),
    (schemas.AddMembersIn, {"user_ids": []}),
    (schemas.AddMembersIn, {"user_ids": ["u"] * 1001}),
    (schemas.AddMembersIn, {"user_ids": ["x" * 129]}),
    (schemas.AddMembersIn, {"user_ids": [""]}),
    (schemas.AddMembersIn, {"user_ids": ["u2"], "role": "king"}),
    (schemas.AddMembersIn, {"user_ids": "u2"}),
    (schemas.UpdateMemberRoleIn, {}),
    (schemas.UpdateMemberRoleIn, {"role": "service"}),
    (schemas.EditMessageIn, {"text": ""}),
    (schemas.EditMessageIn, {"text": "x" * 4001}),
    (schemas.EditMessageIn, {"text": 5}),
    (schemas.ToggleReactionIn, {"emoji": ""}),
    (schemas.ToggleReactionIn, {"emoji": "x" * 65}),
    (schemas.ToggleReactionIn, {}),
    (schemas.ToggleReactionIn, {"emoji": "thumbs up"}),
    (schemas.ToggleReactionIn, {"emoji": " "}),
    (schemas.SendMessageIn, {"text": ""}),
    (schemas.SendMessageIn, {"text": "hi", "thread_root_id": ""}),
    (schemas.SendMessageIn, {"text": "hi", "thread_root_id": "x" * 129}),
    (schemas.SendMessageIn, {"text": "hi", "kind": "file"}),
    (schemas.SendMessageIn, {"text": "hi", "kind": "text", "file": FILE}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "url": "javascript:alert(1)"}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "url": "data:text/html,<b>"}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "url": "ftp://h/x"}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "url": "/relative/path"}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "url": "https://"}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "url": "https://h/a b"}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "url": "https://h:99999/"}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "url": "https://h/" + "x" * 2048}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "name": ""}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "name": "x" * 256}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "size_bytes": 2**63}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "content_type": "pdf"}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "size_bytes": -1}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "size_bytes": 5 * 1024**3 + 1}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "content_type": "a/" + "b" * 126}}),
    (schemas.SendMessageIn, {"text": "hi", "file": {**FILE, "extra": 1}}),
    (schemas.MarkReadIn, {"seq": 2**63}),
    (schemas.MarkReadIn, {"seq": -1}),
]


@pytest.mark.parametrize(("model", "body"), VALID)
def test_accepts(model: type[BaseModel], body: dict[str, Any]) -> None:
    model.model_validate(body)


@pytest.mark.parametrize(("model", "body"), INVALID)
def test_rejects(model: type[BaseModel], body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(body)


def test_file_without_kind_is_a_file_message() -> None:
    body = schemas.SendMessageIn.model_validate({"text": "", "file": FILE})
    assert body.kind == "file"


def test_update_keeps_unset_fields_unset() -> None:
    body = schemas.UpdateConversationIn.model_validate({"topic": ""})
    assert body.topic == "" and body.title is None and body.description is None


SOCKET_INVALID: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (sockets._EditIn, {"conversation_id": "c", "text": "x"}),
    (sockets._EditIn, {"conversation_id": "c", "message_id": "m", "text": ""}),
    (sockets._ReactionIn, {"conversation_id": "c", "message_id": "m", "emoji": "x" * 65}),
    (sockets._MessageRef, {"conversation_id": "c", "message_id": "x" * 129}),
    (sockets._UpdateConversationIn, {"conversation_id": "c"}),
    (sockets._SyncIn, {"conversations": {"c": 1}, "mode": "everything"}),
    (sockets._SyncIn, {"conversations": {"c": 2**63}}),
    (sockets._SyncIn, {"conversations": {"x" * 129: 1}}),
    (sockets._SyncIn, {"conversations": {f"c{i}": 0 for i in range(101)}}),
]


@pytest.mark.parametrize(("model", "body"), SOCKET_INVALID)
def test_socket_payloads_reject(model: type[BaseModel], body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(body)


def test_sync_defaults_to_message_mode() -> None:
    assert sockets._SyncIn.model_validate({"conversations": {"c": -1}}).mode == "messages"
