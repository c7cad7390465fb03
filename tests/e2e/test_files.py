"""Files over the real fleet, on both object stores (GridFS in the MongoDB-wire server,
and versitygw as S3) with a real clamd: upload, scan, previews, download by signed
URL for members only, the EICAR file refused, size and type policy by content, URL
expiry, file messages by REST and socket, retry-safe uploads, and (S3) the presigned
direct upload. The issue's "Done when" list (issue 13)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from confab_devfleet import Fleet
from PIL import Image

from .conftest import Api, Socket, eventually, running_fleet
from .files_helpers import (
    GPS_IFD,
    MIB,
    SVG,
    absolute,
    eicar,
    file_of,
    get_file,
    jpeg_with_gps,
    list_files,
    padded_pdf,
    pdf,
    pe_executable,
    png,
    png_bomb,
    set_file_policy,
    upload,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

# Short on the S3 fleet only, so that expiry is seen in seconds; the session fleet
# keeps the production 120 s.
SHORT_URL_TTL_SECONDS = 10
UNLIMITED = {"user": 1_000_000, "tenant": 1_000_000}
# Processing a small image or PDF takes well under a second; the deadline allows
# for a machine busy with other work.
PROCESSED_TIMEOUT = 60


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def short_url_s3_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The smallest fleet on versitygw: one gateway, URLs that expire in seconds."""
    limits = {"send": UNLIMITED, "connect": UNLIMITED, "file_download": UNLIMITED}
    env = {
        "gateway": {
            "GATEWAY_FILE_URL_TTL_SECONDS": str(SHORT_URL_TTL_SECONDS),
            # The expiry test polls its URL until it runs out.
            "GATEWAY_RATE_LIMITS": json.dumps(limits),
        }
    }
    workdir = Path(tmp_path_factory.mktemp("files-s3-fleet"))
    with running_fleet(workdir, gateways=1, extra_env=env, files_backend="s3") as fleet:
        yield fleet


@pytest.fixture(scope="module", params=["gridfs", "s3"])
def backend(request: pytest.FixtureRequest) -> tuple[str, Fleet]:
    """The session fleet (GridFS, what `make run` uses) or the S3 one."""
    name: str = request.param
    fixture = "fleet" if name == "gridfs" else "short_url_s3_fleet"
    return name, request.getfixturevalue(fixture)


@dataclass
class Env:
    """Clients of one fleet, closed after the test."""

    backend: str
    fleet: Fleet
    apis: list[Api] = field(default_factory=list)
    sockets: list[Socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.fleet.gateway_url(0)

    def api(self, tenant: str, user: str, **claims: Any) -> httpx.AsyncClient:
        made = Api(self.url, self.fleet.token(tenant, user, **claims))
        self.apis.append(made)
        return made.client

    async def socket(self, tenant: str, user: str) -> Socket:
        sock = Socket()
        await sock.connect(self.url, self.fleet.token(tenant, user))
        self.sockets.append(sock)
        return sock


@pytest_asyncio.fixture(loop_scope="session")
async def env(backend: tuple[str, Fleet]) -> AsyncIterator[Env]:
    made = Env(*backend)
    yield made
    for sock in made.sockets:
        await sock.close()
    for api in made.apis:
        await api.close()


def ok(resp: httpx.Response, *statuses: int) -> Any:
    wanted = statuses or (200,)
    assert resp.status_code in wanted, f"{resp.request.method} {resp.request.url}: {resp.text}"
    return resp.json() if resp.content else None


def err(resp: httpx.Response, status: int, code: str | None = None) -> None:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.text}"
    if code is not None:
        assert resp.json()["error"]["code"] == code, resp.text


async def create(api: httpx.AsyncClient, members: list[str]) -> str:
    body = ok(
        await api.post("/conversations", json={"kind": "group", "member_ids": members}), 200, 201
    )
    return str(body["conversation"]["id"])


async def uploaded(
    api: httpx.AsyncClient, conv: str, name: str, data: bytes, content_type: str, **kw: Any
) -> dict[str, Any]:
    return file_of(ok(await upload(api, conv, name, data, content_type, **kw), 200, 201))


async def processed(sock: Socket, file_id: str, status: str = "clean") -> dict[str, Any]:
    """The ``file:updated`` that ends processing (clean, infected or rejected)."""
    event = await sock.wait_for(
        "file:updated",
        lambda e: file_of(e)["id"] == file_id and file_of(e)["status"] != "pending",
        timeout=PROCESSED_TIMEOUT,
    )
    got = file_of(event)
    assert got["status"] == status, got
    return got


async def urls(api: httpx.AsyncClient, conv: str, file_id: str) -> dict[str, Any]:
    """The file and its signed URLs, as a member gets them."""
    return dict(ok(await get_file(api, conv, file_id)))


async def test_images_and_pdfs_are_scanned_previewed_and_served_to_members_only(env: Env) -> None:
    tenant, other_tenant = uid("tenant-files"), uid("tenant-files")
    ann, bob, eve = uid("ann"), uid("bob"), uid("eve")
    ann_api, bob_api = env.api(tenant, ann), env.api(tenant, bob)
    conv = await create(ann_api, [bob])
    ann_sock = await env.socket(tenant, ann)

    photo = jpeg_with_gps()
    assert Image.open(io.BytesIO(photo)).getexif().get_ifd(GPS_IFD)
    image = await uploaded(ann_api, conv, "holiday.jpg", photo, "image/jpeg")
    assert (image["name"], image["content_type"], image["status"]) == (
        "holiday.jpg",
        "image/jpeg",
        "pending",
    )
    assert image["size_bytes"] == len(photo)
    document = pdf()
    paper = await uploaded(ann_api, conv, "minutes.pdf", document, "application/pdf")
    assert paper["content_type"] == "application/pdf"

    # Nobody downloads a file before its scan (the scan may win the race to here).
    before = await urls(ann_api, conv, image["id"])
    if before["status"] == "pending":
        early = await ann_api.get(absolute(env.url, before["url"]))
        if early.status_code != 200:
            err(early, 409, "file_pending")
    # Until it is sent with a message, an upload is its uploader's draft.
    err(await get_file(bob_api, conv, image["id"]), 404, "file_not_found")

    done_image = await processed(ann_sock, image["id"])
    assert done_image["has_thumbnail"] and (done_image["width"], done_image["height"]) == (640, 480)
    done_paper = await processed(ann_sock, paper["id"])
    assert done_paper["has_thumbnail"]
    for made in (image, paper):
        sent = await ann_api.post(
            f"/conversations/{conv}/messages",
            json={"file": {"file_id": made["id"]}, "client_msg_id": uid("m")},
        )
        assert sent.status_code == 201, sent.text
    listed = {f["id"]: f["status"] for f in await list_files(bob_api, conv)}
    assert listed == {image["id"]: "clean", paper["id"]: "clean"}

    # Another member downloads both: the PDF as uploaded, the photo without its EXIF.
    got = await urls(bob_api, conv, paper["id"])
    resp = await bob_api.get(absolute(env.url, got["url"]))
    assert resp.status_code == 200, resp.text
    assert resp.content == document
    assert resp.headers["content-type"].startswith("application/pdf")
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert "minutes.pdf" in resp.headers["content-disposition"]
    assert "sandbox" in resp.headers["content-security-policy"]
    assert resp.headers["cache-control"].startswith("private")
    thumb = await bob_api.get(absolute(env.url, got["thumbnail_url"]))
    assert thumb.status_code == 200, thumb.text
    assert Image.open(io.BytesIO(thumb.content)).format == "WEBP"

    got = await urls(bob_api, conv, image["id"])
    resp = await bob_api.get(absolute(env.url, got["url"]))
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["content-type"].startswith("image/jpeg")
    assert "holiday.jpg" in resp.headers["content-disposition"]
    served = Image.open(io.BytesIO(resp.content))
    assert served.size == (640, 480)
    exif = served.getexif()
    assert not exif.get_ifd(GPS_IFD) and 0x0110 not in exif, dict(exif)
    thumb = await bob_api.get(absolute(env.url, got["thumbnail_url"]))
    assert thumb.status_code == 200, thumb.text
    small = Image.open(io.BytesIO(thumb.content))
    assert small.format == "WEBP" and max(small.size) <= 480
    image_url = absolute(env.url, got["url"])

    # A non-member, and a member of another tenant with the same user id: 404 for
    # the file, and for bob's URL even with their own valid token.
    for stranger in (env.api(tenant, eve), env.api(other_tenant, bob)):
        err(await get_file(stranger, conv, image["id"]), 404)
        err(await stranger.get(f"/conversations/{conv}/files"), 404)
        err(await stranger.get(image_url), 404, "not_found")
    # The URL is bound to bob: ann, a member, cannot use it either.
    err(await ann_api.get(image_url), 404, "not_found")
    # Without a token at all: not served.
    async with httpx.AsyncClient() as nobody:
        anonymous = await nobody.get(image_url)
    assert anonymous.status_code in (401, 404), anonymous.text
    # A tampered signature reveals nothing.
    err(await bob_api.get(image_url[:-2] + ("AA" if not image_url.endswith("AA") else "BB")), 404)


async def test_the_eicar_file_is_infected_and_never_served(env: Env) -> None:
    tenant = uid("tenant-files")
    ann, bob = uid("ann"), uid("bob")
    ann_api, bob_api = env.api(tenant, ann), env.api(tenant, bob)
    conv = await create(ann_api, [bob])
    ann_sock = await env.socket(tenant, ann)

    bad = await uploaded(ann_api, conv, "notes.txt", eicar(), "text/plain")
    assert bad["status"] == "pending"
    early = await urls(ann_api, conv, bad["id"])
    await processed(ann_sock, bad["id"], status="infected")
    got = await urls(ann_api, conv, bad["id"])
    assert got["status"] == "infected" and not got["url"] and not got["thumbnail_url"], got
    if early["url"]:
        # A URL issued while it was pending serves nothing either.
        err(await ann_api.get(absolute(env.url, early["url"])), 409, "file_infected")
    assert [f["status"] for f in await list_files(ann_api, conv)] == ["infected"]
    err(await get_file(bob_api, conv, bad["id"]), 404)
    # An infected file cannot be attached to a message.
    refused = await ann_api.post(
        f"/conversations/{conv}/messages",
        json={"kind": "file", "file": {"file_id": bad["id"]}, "client_msg_id": uid("m")},
    )
    assert refused.status_code in (409, 422), refused.text


async def test_a_file_over_the_default_25_mib_is_refused_and_nothing_is_kept(env: Env) -> None:
    tenant = uid("tenant-files")
    ann = uid("ann")
    ann_api = env.api(tenant, ann)
    conv = await create(ann_api, [uid("bob")])
    resp = await upload(ann_api, conv, "big.pdf", padded_pdf(30 * MIB), "application/pdf")
    err(resp, 413, "file_too_large")
    assert await list_files(ann_api, conv) == []
    # The refused bytes did not count against the quota: a small file still goes.
    await uploaded(ann_api, conv, "small.pdf", pdf(), "application/pdf")


async def test_types_are_judged_by_content_not_by_name(env: Env) -> None:
    tenant = uid("tenant-files")
    ann, bob = uid("ann"), uid("bob")
    ann_api = env.api(tenant, ann)
    conv = await create(ann_api, [bob])
    bob_sock = await env.socket(tenant, bob)

    disguised_image = await uploaded(ann_api, conv, "setup.exe", png(), "application/x-msdownload")
    assert (disguised_image["content_type"], disguised_image["kind"]) == ("image/png", "image")
    await processed(bob_sock, disguised_image["id"])

    for name, content_type in (("cat.png", "image/png"), ("cat.exe", "image/png")):
        resp = await upload(ann_api, conv, name, pe_executable(), content_type)
        err(resp, 422, "file_type_not_allowed")
    # SVG can carry script: blocked under the default policy, whatever it is called.
    err(await upload(ann_api, conv, "logo.png", SVG, "image/png"), 422, "file_type_not_allowed")
    # A decompression bomb is refused by its header, before anything decodes it.
    err(await upload(ann_api, conv, "huge.png", png_bomb(), "image/png"), 422, "image_too_large")
    assert [f["id"] for f in await list_files(ann_api, conv)] == [disguised_image["id"]]


async def test_file_messages_by_rest_and_socket_and_retry_safe_uploads(env: Env) -> None:
    tenant = uid("tenant-files")
    ann, bob = uid("ann"), uid("bob")
    ann_api, bob_api = env.api(tenant, ann), env.api(tenant, bob)
    conv = await create(ann_api, [bob])
    ann_sock, bob_sock = await env.socket(tenant, ann), await env.socket(tenant, bob)

    # The same client id twice (a retry after a lost answer) is one file.
    client_id = uid("up")
    first = ok(await upload(ann_api, conv, "a.pdf", pdf(), "application/pdf", client_id), 201)
    again = ok(await upload(ann_api, conv, "a.pdf", pdf(), "application/pdf", client_id), 200)
    assert (again["id"], first["created"], again["created"]) == (first["id"], True, False)
    assert [f["id"] for f in await list_files(ann_api, conv)] == [first["id"]]

    # REST: a file message refers to the upload by id; the server fills in the rest.
    sent = ok(
        await ann_api.post(
            f"/conversations/{conv}/messages",
            json={
                "text": "the minutes",
                "file": {"file_id": first["id"]},
                "client_msg_id": uid("m"),
            },
        ),
        201,
    )["message"]
    assert (sent["kind"], sent["file"]["file_id"]) == ("file", first["id"])
    assert (sent["file"]["name"], sent["file"]["size_bytes"]) == ("a.pdf", first["size_bytes"])
    new = await bob_sock.wait_for("message:new", lambda m: m["id"] == sent["id"])
    assert new["file"]["name"] == "a.pdf"
    # One file, one message: attaching it again is refused.
    twice = await ann_api.post(
        f"/conversations/{conv}/messages",
        json={"file": {"file_id": first["id"]}, "client_msg_id": uid("m")},
    )
    assert twice.status_code in (409, 422), twice.text

    # Socket: message:send with a file id, like REST.
    photo = await uploaded(ann_api, conv, "p.png", png(), "image/png")
    ack = await ann_sock.call(
        "message:send",
        {"conversation_id": conv, "file": {"file_id": photo["id"]}, "client_msg_id": uid("m")},
    )
    assert ack["ok"], ack
    assert ack["message"]["kind"] == "file" and ack["message"]["file"]["name"] == "p.png"
    await bob_sock.wait_for("message:new", lambda m: m["id"] == ack["message"]["id"])
    await processed(bob_sock, photo["id"])
    assert (await urls(bob_api, conv, photo["id"]))["message_id"] == ack["message"]["id"]

    # A file from another conversation cannot be attached here.
    elsewhere = await create(ann_api, [bob])
    moved = await ann_api.post(
        f"/conversations/{elsewhere}/messages",
        json={"file": {"file_id": photo["id"]}, "client_msg_id": uid("m")},
    )
    assert moved.status_code in (404, 422), moved.text

    # Deleting the message deletes the file.
    ok(await ann_api.delete(f"/conversations/{conv}/messages/{ack['message']['id']}"), 200, 204)
    gone = await get_file(bob_api, conv, photo["id"])
    assert gone.status_code == 404 or file_of(gone.json())["status"] == "deleted", gone.text
    assert photo["id"] not in [f["id"] for f in await list_files(bob_api, conv)]


async def test_direct_upload_to_object_storage(env: Env) -> None:
    tenant = uid("tenant-files")
    ann, bob = uid("ann"), uid("bob")
    ann_api, bob_api = env.api(tenant, ann), env.api(tenant, bob)
    conv = await create(ann_api, [bob])
    document = pdf()
    ask = {
        "client_id": uid("direct"),
        "name": "direct.pdf",
        "size_bytes": len(document),
        "content_type": "application/pdf",
    }
    resp = await ann_api.post(f"/conversations/{conv}/files/uploads", json=ask)
    if env.backend == "gridfs":
        err(resp, 409, "direct_upload_unavailable")
        return
    body = ok(resp, 200, 201)
    made = file_of(body)
    assert made["status"] == "uploading"
    ann_sock = await env.socket(tenant, ann)

    # Completing before the PUT finds no object: refused, the file stays uploading.
    early = await ann_api.post(f"/conversations/{conv}/files/{made['id']}/complete")
    assert early.status_code in (409, 422), early.text

    async with httpx.AsyncClient() as storage:
        put = await storage.put(body["url"], content=document, headers=body["headers"])
    assert put.status_code in (200, 204), put.text
    done = file_of(ok(await ann_api.post(f"/conversations/{conv}/files/{made['id']}/complete")))
    assert (done["id"], done["status"], done["size_bytes"]) == (
        made["id"],
        "pending",
        len(document),
    )
    assert done["content_type"] == "application/pdf"
    await processed(ann_sock, made["id"])
    got = await urls(ann_api, conv, made["id"])
    served = await ann_api.get(absolute(env.url, got["url"]))
    err(await get_file(bob_api, conv, made["id"]), 404)
    assert served.status_code == 200 and served.content == document

    # A direct upload whose bytes are an executable is refused on complete.
    ask = {**ask, "client_id": uid("direct"), "size_bytes": len(pe_executable())}
    body = ok(await ann_api.post(f"/conversations/{conv}/files/uploads", json=ask), 200, 201)
    async with httpx.AsyncClient() as storage:
        put = await storage.put(body["url"], content=pe_executable(), headers=body["headers"])
    assert put.status_code in (200, 204), put.text
    refused = await ann_api.post(f"/conversations/{conv}/files/{file_of(body)['id']}/complete")
    err(refused, 422, "file_type_not_allowed")


async def test_the_signed_url_expires(env: Env) -> None:
    if env.backend != "s3":
        pytest.skip(
            "the session fleet keeps the production 120 s URL lifetime; "
            "the S3 fleet's short one shows expiry"
        )
    tenant = uid("tenant-files")
    ann, bob = uid("ann"), uid("bob")
    ann_api = env.api(tenant, ann)
    conv = await create(ann_api, [bob])
    ann_sock = await env.socket(tenant, ann)
    made = await uploaded(ann_api, conv, "p.png", png(), "image/png")
    await processed(ann_sock, made["id"])
    url = absolute(env.url, (await urls(ann_api, conv, made["id"]))["url"])

    async def fetch() -> httpx.Response:
        return await ann_api.get(url)

    first = await fetch()
    assert first.status_code in (200, 403), first.text
    expired = await eventually(
        fetch, lambda r: r.status_code != 200, timeout=SHORT_URL_TTL_SECONDS + 20
    )
    err(expired, 403, "url_expired")
    # A fresh URL works again.
    fresh = absolute(env.url, (await urls(ann_api, conv, made["id"]))["url"])
    assert (await ann_api.get(fresh)).status_code == 200


async def test_a_full_user_quota_is_413_and_deleting_a_file_frees_it(env: Env) -> None:
    tenant = uid("tenant-files")
    ann, bob = uid("ann"), uid("bob")
    admin = env.api(tenant, uid("root"), roles=["tenant_admin"])
    ok(await set_file_policy(admin, user_quota_bytes=150_000))
    ann_api, bob_api = env.api(tenant, ann), env.api(tenant, bob)
    conv = await create(ann_api, [bob])
    text = b"minutes of the meeting\n" * 4000

    first = await uploaded(ann_api, conv, "one.txt", text, "text/plain")
    err(await upload(ann_api, conv, "two.txt", text, "text/plain"), 413, "quota_exceeded")
    # The quota is per user: bob still has his.
    await uploaded(bob_api, conv, "bobs.txt", text, "text/plain")
    # Unsent uploads are each uploader's drafts: each lists their own.
    assert [f["name"] for f in await list_files(ann_api, conv)] == ["one.txt"]
    assert [f["name"] for f in await list_files(bob_api, conv)] == ["bobs.txt"]

    deleted = await ann_api.delete(f"/conversations/{conv}/files/{first['id']}")
    assert deleted.status_code == 204, deleted.text
    err(await get_file(ann_api, conv, first["id"]), 404)

    # The freed bytes count again (released with the record, or once purged).
    async def again() -> httpx.Response:
        return await upload(ann_api, conv, "two.txt", text, "text/plain", client_id="again")

    second = await eventually(again, lambda r: r.status_code != 413, timeout=30)
    assert second.status_code == 201, second.text
