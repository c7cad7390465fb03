"""Unread and mention counts agree with a brute-force model under random traffic.

A Hypothesis state machine sends (with @mentions, @channel/@here/@all, thread
replies), edits (which may add or drop mentions), deletes, moves read markers and
adds or removes a member, against the real handlers on a real MongoDB-wire
server. After every step, every member's ``unread_count`` and ``mention_count``
(from ``list_for_caller`` and from ``get``) must equal the documented rule,
recomputed from scratch:

- unread: top-level messages from others with ``seq > last_read_seq``, not deleted;
- mentions: messages, thread replies included, from others after the marker, not
  deleted, naming the user (who was a member when the text was written) or
  @channel / @here / @all.

Each example gets a tenant and conversation of its own; the coroutines run on a
loop owned by the test, so Hypothesis drives plain synchronous rules.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core import mongo
from confab_core.clock import FakeClock
from confab_core.crypto import LocalKeyFileProvider
from confab_core.errors import FailedPrecondition, NotFound
from confab_devservers import MongoServer, dev_key_file
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.db import Database

from .conftest import fresh_tenant, user

T = TypeVar("T")

OWNER = "u0"
REGULARS = ["u0", "u1", "u2"]
# Added and removed during a run: a mention written while they were out never counts.
GHOST = "ghost"
PEOPLE = [*REGULARS, GHOST]
# Mentionable names: the people, and somebody who never belongs.
NAMES = [*PEOPLE, "stranger"]
EVERYONE = [None, "channel", "here", "all"]


@dataclass
class Msg:
    id: str
    seq: int
    sender: str
    top_level: bool
    mentions: set[str]
    everyone: bool
    deleted: bool = False


@dataclass
class Model:
    members: set[str]
    markers: dict[str, int]
    messages: list[Msg] = field(default_factory=list)
    last_seq: int = 0

    def resolve(self, names: list[str]) -> set[str]:
        """Mentions are stored for those who are members when the text is written."""
        return {n for n in names if n in self.members}

    def counts(self, who: str) -> tuple[int, int]:
        last = self.markers[who]
        live = [m for m in self.messages if m.seq > last and not m.deleted and m.sender != who]
        unread = sum(1 for m in live if m.top_level)
        mentions = sum(1 for m in live if who in m.mentions or m.everyone)
        return unread, mentions


def text_for(names: list[str], everyone: str | None, salt: int) -> str:
    words = [f"note {salt}", *(f"@{n}" for n in names)]
    if everyone:
        words.append(f"@{everyone}")
    # Not mentions: an address, and a doubled at-sign.
    words.append("write to u1@example.com or @@u2")
    return " ".join(words)


class Traffic:
    """The loop, the client and the handlers shared by every example of one test."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = mongo.connect(url, "test")
        self.name = f"conv_{uuid.uuid4().hex[:12]}"
        self.db = Database(self.client, self.name, LocalKeyFileProvider(dev_key_file()))
        unit = UnitOfWork(self.db, FakeClock(), asyncio.Event())
        self.conversations = ConversationHandler(unit)
        self.messages = MessageHandler(unit)
        self.run(self.db.ensure_indexes())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.client.drop_database(self.name))
        self.run(self.client.close())
        self.loop.close()


class UnreadMachine(RuleBasedStateMachine):
    traffic: Traffic

    def __init__(self) -> None:
        super().__init__()
        self.tenant = fresh_tenant()
        self.salt = 0
        conversations = self.traffic.conversations
        created = self.run(
            conversations.create(
                self.caller(OWNER),
                kind=pb.CONVERSATION_KIND_GROUP,
                title="",
                description="",
                member_ids=REGULARS[1:],
                context=None,
            )
        )
        self.conv = created.conversation.id
        self.model = Model(members=set(REGULARS), markers=dict.fromkeys(REGULARS, 0))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.traffic.run(coro)

    def caller(self, who: str) -> Any:
        return user(who, self.tenant)

    def pick(self, index: int, items: list[Msg]) -> Msg:
        return items[index % len(items)]

    # -- rules ----------

    @rule(
        sender=st.sampled_from(PEOPLE),
        names=st.lists(st.sampled_from(NAMES), max_size=3),
        everyone=st.sampled_from(EVERYONE),
        reply_to=st.none() | st.integers(min_value=0, max_value=1000),
    )
    def send(
        self, sender: str, names: list[str], everyone: str | None, reply_to: int | None
    ) -> None:
        roots = [m for m in self.model.messages if m.top_level and not m.deleted]
        root = self.pick(reply_to, roots) if reply_to is not None and roots else None
        self.salt += 1
        coro = self.traffic.messages.send(
            self.caller(sender),
            conversation_id=self.conv,
            client_msg_id=f"c{self.salt}",
            text=text_for(names, everyone, self.salt),
            kind=pb.MESSAGE_KIND_TEXT,
            thread_root_id=root.id if root else "",
        )
        if sender not in self.model.members:
            # A group is invisible to non-members.
            with pytest.raises(NotFound):
                self.run(coro)
            return
        sent = self.run(coro).message
        self.model.last_seq += 1
        assert sent.seq == self.model.last_seq
        self.model.messages.append(
            Msg(
                id=sent.id,
                seq=sent.seq,
                sender=sender,
                top_level=root is None,
                mentions=self.model.resolve(names),
                everyone=everyone is not None,
            )
        )
        assert set(sent.mentions) == self.model.messages[-1].mentions
        # Sending reads everything up to one's own message.
        self.model.markers[sender] = max(self.model.markers[sender], sent.seq)

    @precondition(lambda self: self.model.messages)
    @rule(
        index=st.integers(min_value=0, max_value=1000),
        names=st.lists(st.sampled_from(NAMES), max_size=3),
        everyone=st.sampled_from(EVERYONE),
    )
    def edit(self, index: int, names: list[str], everyone: str | None) -> None:
        msg = self.pick(index, self.model.messages)
        self.salt += 1
        coro = self.traffic.messages.edit(
            self.caller(msg.sender),
            conversation_id=self.conv,
            message_id=msg.id,
            text=text_for(names, everyone, self.salt),
        )
        if msg.deleted:
            with pytest.raises(FailedPrecondition):
                self.run(coro)
            return
        if msg.sender not in self.model.members:
            with pytest.raises(NotFound):
                self.run(coro)
            return
        self.run(coro)
        msg.mentions = self.model.resolve(names)
        msg.everyone = everyone is not None

    @precondition(lambda self: self.model.messages)
    @rule(index=st.integers(min_value=0, max_value=1000), by_owner=st.booleans())
    def delete(self, index: int, by_owner: bool) -> None:
        msg = self.pick(index, self.model.messages)
        # The owner (a conv admin) deletes anyone's message; a former member nothing.
        who = OWNER if by_owner or msg.sender not in self.model.members else msg.sender
        self.run(
            self.traffic.messages.delete(
                self.caller(who), conversation_id=self.conv, message_id=msg.id
            )
        )
        msg.deleted = True

    @rule(who=st.sampled_from(PEOPLE), ahead=st.integers(min_value=-3, max_value=2))
    def mark_read(self, who: str, ahead: int) -> None:
        seq = max(0, self.model.last_seq + ahead)
        coro = self.traffic.messages.mark_read(self.caller(who), conversation_id=self.conv, seq=seq)
        if who not in self.model.members:
            with pytest.raises(NotFound):
                self.run(coro)
            return
        last, unread = self.run(coro)
        marker = max(self.model.markers[who], min(seq, self.model.last_seq))
        self.model.markers[who] = marker
        assert (last, unread) == (marker, self.model.counts(who)[0])

    @precondition(lambda self: GHOST not in self.model.members)
    @rule()
    def add_ghost(self) -> None:
        self.run(self.traffic.conversations.add_members(self.caller(OWNER), self.conv, [GHOST], 0))
        self.model.members.add(GHOST)
        # A new member starts with nothing read.
        self.model.markers[GHOST] = 0

    @precondition(lambda self: GHOST in self.model.members)
    @rule()
    def remove_ghost(self) -> None:
        self.run(self.traffic.conversations.remove_member(self.caller(OWNER), self.conv, GHOST))
        self.model.members.discard(GHOST)
        del self.model.markers[GHOST]

    # -- the property ----------

    @invariant()
    def counts_match_the_model(self) -> None:
        for who in PEOPLE:
            listed = self.run(
                self.traffic.conversations.list_for_caller(self.caller(who), 10)
            ).conversations
            mine = [c for c in listed if c.id == self.conv]
            if who not in self.model.members:
                assert mine == [], who
                continue
            expected = (*self.model.counts(who), self.model.markers[who])
            (view,) = mine
            got = (view.unread_count, view.mention_count, view.last_read_seq)
            assert got == expected, (who, "list")
            view = self.run(self.traffic.conversations.get(self.caller(who), self.conv))
            got = (view.unread_count, view.mention_count, view.last_read_seq)
            assert got == expected, (who, "get")


def test_unread_and_mention_counts_follow_the_rule(mongo_server: MongoServer) -> None:
    traffic = Traffic(mongo_server.url)
    UnreadMachine.traffic = traffic
    try:
        run_state_machine_as_test(
            UnreadMachine,
            settings=settings(
                max_examples=10,
                stateful_step_count=12,
                deadline=None,
                database=None,
                # A failing run of at most 12 steps reads well as it is; shrinking it
                # against a real database takes minutes, past pytest's timeout.
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        traffic.close()
