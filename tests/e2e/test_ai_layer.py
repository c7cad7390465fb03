"""The AI layer end to end on the real fleet: a tenant admin configures two bot
agents and topics; a member's support ticket starts with the support agent, which
streams its answer to an allowed question to the member's socket on the other
gateway; a forbidden question never reaches the model and hands the ticket to a
person, whom the desk tells and who claims it; the bot is silent from then on; the
summary endpoint summarizes. A second tenant sees none of it and keeps the default
bot. Asserted through REST, Socket.IO and what the fake model server received."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from confab_devservers import FakeOpenAI
from confab_devservers.fake_openai import echo_reply, message_text

from .conftest import Api, Socket, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

HANDOFF_TEXT = "Connecting you to a person…"


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def mentions(body: dict[str, Any], text: str) -> bool:
    return any(text in message_text(m) for m in body.get("messages") or [] if isinstance(m, dict))


def answer(question: str) -> str:
    """A reply long enough to need several coalesced deltas (16 tokens each), on
    topic and free of the forbidden keywords and of "cannot help" phrases."""
    sentence = (
        "The spring tournament bracket is seeded by last season's ranking, the top "
        "eight teams open the group stage and the knockout rounds follow on Sunday."
    )
    return f"About '{question}': " + " ".join([sentence] * 3)


async def test_agents_topics_streamed_support_reply_handoff_and_silence(
    users: Callable[..., Api], sockets: Callable[..., Any], fake_openai: FakeOpenAI
) -> None:
    tenant, other = uid("tenant-ai"), uid("tenant-ai")
    tag = uuid.uuid4().hex[:8]
    support_model, pick_model = f"support-{tag}", f"coach-{tag}"
    support_id, pick_id = f"helpdesk-{tag}", f"coach-{tag}"
    support_user = f"confab-bot:{support_id}"

    def reply(body: dict[str, Any]) -> str:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        users_said = [message_text(m) for m in messages if m.get("role") == "user"]
        if body.get("model") == support_model and body.get("stream") and users_said:
            return answer(users_said[-1])
        return echo_reply(body)

    fake_openai.set_reply(reply)
    try:
        await _scenario(
            users, sockets, fake_openai, tenant, other, support_model, pick_model,
            support_id, pick_id, support_user,
        )  # fmt: skip
    finally:
        fake_openai.set_reply(None)


async def _scenario(
    users: Callable[..., Api],
    sockets: Callable[..., Any],
    fake: FakeOpenAI,
    tenant: str,
    other: str,
    support_model: str,
    pick_model: str,
    support_id: str,
    pick_id: str,
    support_user: str,
) -> None:
    admin = users(tenant, "root", roles=["tenant_admin"], name="Root")
    ada = users(tenant, "ada", roles=["agent"], name="Ada")
    mia = users(tenant, "mia", name="Mia")
    b_admin = users(other, "root", roles=["tenant_admin"], name="Root")
    b_member = users(other, "mia", name="Mia")

    # 1. The admin configures a support agent, a pickable agent and the topics,
    # with optimistic concurrency: the ETag is the version and moves with a write.
    before = await admin.client.get("/settings")
    assert before.status_code == 200 and before.headers["etag"] == '"0"', before.text
    document = {
        "branding": {"display_name": "Arena", "welcome_message": "Hi from Arena"},
        "agents": [
            {
                "id": support_id,
                "display_name": "Arena Helpdesk",
                "role": "support",
                "model": support_model,
                "system_prompt": "You answer questions about Arena tournaments.",
                "temperature": 0.2,
                "handoff_after_turns": 10,
            },
            {
                "id": pick_id,
                "display_name": "Arena Coach",
                "role": "pickable",
                "model": pick_model,
                "system_prompt": "You coach players.",
            },
        ],
        "topics": {
            "allowed": [{"name": "tournaments", "keywords": ["tournament", "bracket", "match"]}],
            "forbidden": [
                {"name": "gambling", "keywords": ["betting", "odds"], "phrases": ["place a bet"]}
            ],
        },
    }
    missing = await admin.client.put("/settings", json=document)
    assert missing.status_code == 428, missing.text
    saved = await admin.client.put("/settings", json=document, headers={"If-Match": '"0"'})
    assert saved.status_code == 200, saved.text
    assert saved.headers["etag"] == '"1"' and saved.json()["version"] == 1
    assert [a["id"] for a in saved.json()["agents"]] == [support_id, pick_id]
    stale = await admin.client.put("/settings", json=document, headers={"If-Match": '"0"'})
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "version_mismatch"
    public = ok(await mia.client.get("/settings/public"))
    assert {(a["id"], a["role"], a["user_id"]) for a in public["agents"]} == {
        (support_id, "support", support_user),
        (pick_id, "pickable", f"confab-bot:{pick_id}"),
    }

    # The other tenant: its own version and defaults, none of A's agents.
    theirs = await b_admin.client.get("/settings")
    assert theirs.status_code == 200 and theirs.headers["etag"] == '"0"'
    assert theirs.json()["agents"] == [] and theirs.json()["topics"]["forbidden"] == []
    assert ok(await b_member.client.get("/settings/public"))["agents"] == []

    # Mia has a socket on each gateway; Ada, an agent, is online on gateway 0.
    mia_here: Socket = await sockets(tenant, "mia", name="Mia")
    mia_there: Socket = await sockets(tenant, "mia", gateway=1, name="Mia")
    ada_socket: Socket = await sockets(tenant, "ada", roles=["agent"], name="Ada")

    # 2. Mia opens a ticket: the support agent holds it and answers, streamed.
    first_q = "When does the spring tournament start?"
    opened = ok(
        await mia.client.post(
            "/tickets",
            json={"subject": "Spring tournament", "text": first_q, "client_msg_id": uid("t")},
        ),
        201,
    )
    ticket_id, conv = opened["ticket"]["id"], opened["ticket"]["conversation_id"]
    assert opened["ticket"]["status"] == "bot" and opened["ticket"]["agent_id"] == support_id

    def from_bot(m: dict[str, Any]) -> bool:
        return bool(m["conversation_id"] == conv and m["sender_id"].startswith("confab-bot"))

    first = await mia_there.wait_for("message:new", from_bot, timeout=20)
    assert first["sender_id"] == support_user and first["text"] == answer(first_q)
    assert first["stream_state"] == "complete"
    # Mia's gateway-1 socket is now in the room from the start of any new stream:
    # the next answer arrives there delta by delta, gapless, then ends once.
    second_q = "How is the bracket for the tournament seeded?"
    asked = ok(await mia.send(conv, second_q, uid("m")), 201)["message"]
    end = await mia_there.wait_for(
        "message:stream",
        lambda e: e["conversation_id"] == conv and e.get("done") and e["message_id"] != first["id"],
        timeout=20,
    )
    stream = [
        e for e in mia_there.received("message:stream") if e["message_id"] == end["message_id"]
    ]
    assert [e["index"] for e in stream] == list(range(len(stream))), stream
    assert stream[0]["delta"] == "" and stream[-1] is end
    deltas = [e["delta"] for e in stream[1:-1]]
    assert len(deltas) >= 2 and all("text" not in e for e in stream), stream
    assert end["state"] == "complete" and end["sender_id"] == support_user
    assert "".join(deltas) == answer(second_q) == end["message"]["text"]
    stored = await mia_here.wait_for("message:new", lambda m: m["id"] == end["message_id"])
    assert stored["stream_state"] == "complete" and stored["sender_id"] == support_user
    page = ok(await mia.client.get(f"/conversations/{conv}/messages", params={"limit": 100}))
    by_id = {m["id"]: m for m in page["messages"]}
    assert by_id[end["message_id"]]["stream_state"] == "complete"
    assert by_id[end["message_id"]]["seq"] > asked["seq"]
    served = [b for b in fake.requests if mentions(b, second_q)]
    assert served and all(b["model"] == support_model for b in served)

    # 3. A forbidden question (though it names a tournament too): no model call, a handoff.
    forbidden_q = f"What are the betting odds for the tournament final {uuid.uuid4().hex[:6]}?"
    ok(await mia.send(conv, forbidden_q, uid("m")), 201)
    handoff = await ada_socket.wait_for(
        "ticket:updated",
        lambda d: d["ticket"]["id"] == ticket_id and d["change"] == "handoff",
        timeout=20,
    )
    assert handoff["previous_status"] == "bot" and handoff["ticket"]["status"] == "queued"
    assert handoff["ticket"]["handoff_reason"] == "forbidden_topic"
    await ada_socket.wait_for(
        "queue:updated",
        lambda d: (
            d["ticket_id"] == ticket_id and d["change"] == "added" and d["status"] == "queued"
        ),
    )
    ticket = ok(await ada.client.get(f"/tickets/{ticket_id}"))["ticket"]
    assert ticket["status"] == "queued" and ticket["handoff_reason"] == "forbidden_topic"
    assert ticket["handoff_summary"] and ticket["handed_off_at"]
    notice = await mia_there.wait_for(
        "message:new", lambda m: m["conversation_id"] == conv and m["text"] == HANDOFF_TEXT
    )
    assert notice["kind"] == "system" and notice["sender_id"] == "confab-system"
    assert not [b for b in fake.requests if mentions(b, forbidden_q)]

    claimed = ok(await ada.client.post(f"/tickets/{ticket_id}/claim"))["ticket"]
    assert claimed["status"] == "assigned" and claimed["assignee_id"] == "ada"
    await mia_there.wait_for(
        "ticket:updated",
        lambda d: d["ticket"]["id"] == ticket_id and d["ticket"]["status"] == "assigned",
    )

    # 4. The bot is silent: Mia asks an allowed question, Ada answers it; Mia's
    # socket gets both, in order, and nothing from the bot, streamed or not.
    streamed_before = len(mia_there.received("message:stream"))
    after_q = f"Is the tournament bracket final now {uuid.uuid4().hex[:6]}?"
    later = ok(await mia.send(conv, after_q, uid("m")), 201)["message"]
    from_ada = ok(await ada.send(conv, "Yes, it is final. Ada here.", uid("m")), 201)["message"]
    await mia_there.wait_for("message:new", lambda m: m["id"] == from_ada["id"])
    tail = [
        m
        for m in mia_there.received("message:new", lambda m: m["conversation_id"] == conv)
        if m["seq"] >= later["seq"]
    ]
    assert [m["id"] for m in tail] == [later["id"], from_ada["id"]]
    assert len(mia_there.received("message:stream")) == streamed_before
    assert not [b for b in fake.requests if mentions(b, after_q)]
    page = ok(await ada.client.get(f"/conversations/{conv}/messages", params={"limit": 100}))
    bot_lines = [m for m in page["messages"] if m["sender_id"] == support_user]
    assert [m["id"] for m in bot_lines] == [first["id"], end["message_id"]]

    # 5. The summary.
    summary = ok(await mia.client.get(f"/conversations/{conv}/summary"))
    assert summary["model_available"] is True and summary["summary"].strip()
    summarized = [b for b in fake.requests if mentions(b, after_q)]
    assert summarized, "the summary was written by the model"
    # Not even the summary shows the model the forbidden question.
    assert not [b for b in fake.requests if mentions(b, forbidden_q)]

    # Cost accounting: the support agent's calls are counted for tenant A only.
    async def usage(api: Api) -> Any:
        return ok(await api.client.get("/ai/usage"))

    mine = await eventually(
        lambda: usage(admin),
        lambda u: any(a["agent_id"] == support_id and a["calls"] >= 2 for a in u["agents"]),
    )
    assert mine["tokens_in"] > 0 and mine["tokens_out"] > 0

    # The other tenant throughout: its ticket goes to humans, its assistant
    # conversation is the default bot's (no topics: its betting question is
    # answered), and its settings and usage are its own.
    b_ticket = ok(
        await b_member.client.post(
            "/tickets", json={"subject": "Help", "text": "Help me", "client_msg_id": uid("t")}
        ),
        201,
    )["ticket"]
    assert b_ticket["status"] == "queued" and b_ticket.get("agent_id") is None
    b_socket: Socket = await sockets(other, "mia", gateway=1, name="Mia")
    b_conv = (await b_member.create("ai_assistant", [], "help"))["id"]
    b_q = f"What are the betting odds tonight {uuid.uuid4().hex[:6]}?"
    ok(await b_member.send(b_conv, b_q, uid("m")), 201)
    b_reply = await b_socket.wait_for(
        "message:new", lambda m: m["conversation_id"] == b_conv and m["kind"] == "bot", timeout=20
    )
    assert b_reply["sender_id"] == "confab-bot" and b_reply["text"] == f"echo: {b_q}"
    assert all(
        b["model"] not in (support_model, pick_model) for b in fake.requests if mentions(b, b_q)
    )
    theirs = await b_admin.client.get("/settings")
    assert theirs.headers["etag"] == '"0"' and theirs.json()["agents"] == []
    assert ok(await b_member.client.get("/settings/public"))["agents"] == []
    b_usage = await eventually(lambda: usage(b_admin), lambda u: bool(u["agents"]))
    assert {a["agent_id"] for a in b_usage["agents"]} == {""}

    # And tenant A's pickable agent answers the conversation created with it.
    coach_conv = ok(
        await mia.client.post(
            "/conversations", json={"kind": "ai_assistant", "agent_id": pick_id, "title": "coach"}
        ),
        201,
    )["conversation"]["id"]
    coach_q = "How do I warm up before a match?"
    ok(await mia.send(coach_conv, coach_q, uid("m")), 201)
    coached = await mia_here.wait_for(
        "message:new",
        lambda m: m["conversation_id"] == coach_conv and m["kind"] == "bot",
        timeout=20,
    )
    assert coached["sender_id"] == f"confab-bot:{pick_id}"
    assert coached["text"] == f"echo: {coach_q}"
    assert [b["model"] for b in fake.requests if mentions(b, coach_q)] == [pick_model]
