"""Seeds a demo tenant through the public API, as a client would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import httpx

from confab_core.identity import PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN
from confab_devfleet.fleet import Fleet

DEMO_TENANT = "demo"
USERS = {
    "alice": (["tenant_admin"], "Alice Admin"),
    "bob": (["agent"], "Bob Agent"),
    "carol": (["member"], "Carol Client"),
}
# Platform staff: outside every tenant (their token names the platform tenant).
PLATFORM_USER = "pat"


@dataclass
class Demo:
    tenant_id: str
    tokens: dict[str, str] = field(default_factory=dict)
    conversations: dict[str, str] = field(default_factory=dict)


def seed_demo(fleet: Fleet) -> Demo:
    demo = Demo(DEMO_TENANT)
    for user, (roles, name) in USERS.items():
        demo.tokens[user] = fleet.token(
            DEMO_TENANT, user, roles=roles, name=name, email=f"{user}@demo.confab.local"
        )
    demo.tokens[PLATFORM_USER] = fleet.token(
        PLATFORM_TENANT_ID, PLATFORM_USER, roles=[ROLE_SUPER_ADMIN], name="Pat Platform"
    )
    base = f"{fleet.gateway_url()}/api/v1"

    def client(user: str) -> httpx.Client:
        return httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {demo.tokens[user]}"}, timeout=10
        )

    with client("bob") as bob, client("carol") as carol:
        # Profiles (names, emails) are learned from each user's first call.
        bob.get("/conversations").raise_for_status()
        carol.get("/conversations").raise_for_status()
    with client("alice") as alice:
        specs = {
            "general": {
                "kind": "public_channel",
                "title": "general",
                "member_ids": ["bob", "carol"],
            },
            "team": {"kind": "group", "title": "Team", "member_ids": ["bob"]},
            "alice+carol": {"kind": "direct", "member_ids": ["carol"]},
            "assistant": {"kind": "ai_assistant", "title": "Assistant"},
        }
        for title, body in specs.items():
            resp = alice.post("/conversations", json=body)
            resp.raise_for_status()
            demo.conversations[title] = resp.json()["conversation"]["id"]
        alice.post(
            f"/conversations/{demo.conversations['general']}/messages",
            json={"text": "Welcome to Confab!", "client_msg_id": f"demo-{uuid.uuid4().hex}"},
        ).raise_for_status()
    return demo
