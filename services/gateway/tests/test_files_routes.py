"""File routes over ASGI: the multipart body streams into UploadFile chunk by chunk
(never whole), bad bodies never store anything, signed URLs bind the caller, and
downloads carry safe headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest
import pytest_asyncio

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import files_pb2 as fpb
from confab_core.auth import JwtVerifier
from confab_core.clock import FakeClock
from confab_core.errors import ERROR_CODE_METADATA_KEY, TooLarge
from confab_core.identity import Caller
from gateway.app import STREAMED_BODIES
from gateway.bodylimit import BodyLimitMiddleware
from gateway.clients.files import MAX_CHUNK_BYTES, FileClient
from gateway.context import GatewayContext
from gateway.fileops import QUEUE_CHUNKS, MultipartUpload
from gateway.fileurls import FileUrlSigner
from gateway.ratelimit import Action, RateLimited
from gateway.realtime.fanout import Fanout
from gateway.realtime.sockets import Session, SocketGateway

from .conftest import SECRET, shared_api, token

pytestmark = pytest.mark.asyncio

BOUNDARY = "b0undary7MA4YWxkTrZu0gW"


def rpc_error(status: grpc.StatusCode, code: str) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata((ERROR_CODE_METADATA_KEY, code))
    return grpc.aio.AioRpcError(status, grpc.aio.Metadata(), trailing, code)


def sample_file(**fields: Any) -> fpb.File:
    f = fpb.File(
        id="f1",
        conversation_id="c1",
        uploader_id="u1",
        name="photo.png",
        content_type="image/png",
        kind="image",
        size_bytes=3,
        status=fpb.FILE_STATUS_CLEAN,
        client_id="k1",
        sha256="ab" * 32,
    )
    f.created_at.FromSeconds(1_700_000_000)
    f.updated_at.FromSeconds(1_700_000_100)
    for key, value in fields.items():
        setattr(f, key, value)
    return f


class DownloadCall:
    def __init__(self, parts: list[fpb.DownloadFileResponse], error: Exception | None) -> None:
        self._parts = parts
        self._error = error
        self.cancelled = False

    async def _iter(self) -> AsyncIterator[fpb.DownloadFileResponse]:
        if self._error is not None:
            raise self._error
        for part in self._parts:
            yield part

    def __aiter__(self) -> AsyncIterator[fpb.DownloadFileResponse]:
        return self._iter()

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class FakeFiles:
    """FileService's stub: records requests, the upload's chunks as they arrive
    (into ``log``, shared with the request body), and answers from ``answers``."""

    def __init__(self, log: list[tuple[str, int]]) -> None:
        self.log = log
        self.calls: list[tuple[str, Any]] = []
        self.errors: dict[str, Exception] = {}
        self.start: fpb.UploadStart | None = None
        self.chunks: list[bytes] = []
        # Whether the last upload stream was half-closed (what completes an upload).
        self.completed = False
        self.upload_cancelled = False
        self.fail_after_chunks: int | None = None
        # Answer before the stream ends (a retry the service recognised at once).
        self.answer_after_chunks = 0
        self.file = sample_file()
        self.created = True
        self.download: list[fpb.DownloadFileResponse] = []

    def UploadFile(self, requests: AsyncIterator[fpb.UploadFileRequest], **_: Any) -> Any:
        async def run() -> fpb.UploadFileResponse:
            self.calls.append(("UploadFile", None))
            try:
                async for req in requests:
                    if req.WhichOneof("part") == "start":
                        self.start = req.start
                        continue
                    self.chunks.append(req.chunk)
                    self.log.append(("got", len(req.chunk)))
                    if self.answer_after_chunks and len(self.chunks) >= self.answer_after_chunks:
                        return fpb.UploadFileResponse(file=self.file, created=self.created)
                    error = self.errors.get("UploadFile")
                    if error is not None and len(self.chunks) >= (self.fail_after_chunks or 0):
                        raise error
            except asyncio.CancelledError:
                self.upload_cancelled = True
                raise
            self.completed = True
            return fpb.UploadFileResponse(file=self.file, created=self.created)

        # Like a grpc.aio call: awaitable, and done() once the service answered.
        return asyncio.ensure_future(run())

    def DownloadFile(self, request: fpb.DownloadFileRequest, **_: Any) -> DownloadCall:
        self.calls.append(("DownloadFile", request))
        return DownloadCall(self.download, self.errors.get("DownloadFile"))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not name[:1].isupper():
            raise AttributeError(name)

        async def rpc(request: Any, **_: Any) -> Any:
            self.calls.append((name, request))
            if name in self.errors:
                raise self.errors[name]
            resp = getattr(fpb, f"{name}Response")()
            if "file" in resp.DESCRIPTOR.fields_by_name:
                resp.file.CopyFrom(self.file)
            if "files" in resp.DESCRIPTOR.fields_by_name:
                resp.files.append(self.file)
            if name == "CreateUploadUrl":
                resp.url = "http://s3.local/bucket/key?X-Amz-Signature=x"
                resp.headers["content-length"] = "3"
                resp.expires_at.FromSeconds(1_700_000_600)
                resp.created = True
            return resp

        return rpc

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]


class Limiter:
    def __init__(self) -> None:
        self.refuse = False
        self.checked: list[Action] = []

    async def check(self, caller: Caller, action: Action) -> None:
        self.checked.append(action)
        if self.refuse:
            raise RateLimited("slow down", "rate_limited", 3)


class Ops:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter


class World:
    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []
        self.stub = FakeFiles(self.log)
        self.limiter = Limiter()
        self.clock = FakeClock()
        self.http: httpx.AsyncClient


def _context(w: World) -> GatewayContext:
    backends = type("B", (), {"files": FileClient(cast(Any, w.stub), 5.0, 60.0)})()
    return GatewayContext(
        settings=cast(Any, None),
        verifier=JwtVerifier(hs256_secret=SECRET),
        backends=cast(Any, backends),
        ops=cast(Any, Ops(w.limiter)),
        file_urls=FileUrlSigner(b"k" * 32, w.clock, "/api/v1"),
    )


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    api = shared_api()
    api.state.gateway = _context(w)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://gateway",
        headers={"Authorization": f"Bearer {token()}"},
    ) as http:
        w.http = http
        yield w


def part(name: str, body: bytes, filename: str | None = None, ctype: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    return head.encode() + b"\r\n" + body + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


CTYPE = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
UPLOAD = "/api/v1/conversations/c1/files"


async def upload(w: World, body: bytes, **headers: str) -> httpx.Response:
    return await w.http.post(UPLOAD, content=body, headers={**CTYPE, **headers})


async def test_the_body_streams_into_the_upload_in_chunks(world: World) -> None:
    data = bytes(range(256)) * 256 * 20  # 1.25 MiB
    body = multipart(part("client_id", b"k1"), part("file", data, "ph\u00f6to.png", "image/png"))
    piece = 16 * 1024

    async def sent() -> AsyncIterator[bytes]:
        for at in range(0, len(body), piece):
            world.log.append(("sent", at))
            yield body[at : at + piece]

    resp = await world.http.post(
        UPLOAD, content=sent(), headers={**CTYPE, "Content-Length": str(len(body))}
    )
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["id"] == "f1" and out["status"] == "clean" and out["created"] is True
    assert world.stub.completed and b"".join(world.stub.chunks) == data
    start = world.stub.start
    assert start is not None
    assert start.conversation_id == "c1" and start.client_id == "k1"
    assert start.name == "ph\u00f6to.png" and start.declared_content_type == "image/png"
    # Exact for a one-part body: lets the service refuse a file too large at once.
    assert start.declared_size_bytes == len(data)
    # The service saw bytes long before the body ended, and the gateway never held
    # more than its queue's worth between what it read and what was taken.
    kinds = [k for k, _ in world.log]
    assert kinds.index("got") < len(kinds) - kinds[::-1].index("sent") - 1
    ahead = 0
    for kind, _ in world.log:
        ahead = ahead + 1 if kind == "sent" else 0
        assert ahead <= QUEUE_CHUNKS + 4
    assert world.limiter.checked == [Action.FILE_UPLOAD]


async def test_a_retry_by_idempotency_key_answers_200(world: World) -> None:
    world.stub.created = False
    resp = await upload(
        world, multipart(part("file", b"abc", "a.txt")), **{"Idempotency-Key": "k-9"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] is False
    assert world.stub.start is not None and world.stub.start.client_id == "k-9"


async def test_without_a_client_id_the_gateway_makes_one(world: World) -> None:
    resp = await upload(world, multipart(part("file", b"abc", "a.txt")))
    assert resp.status_code == 201
    assert world.stub.start is not None and len(world.stub.start.client_id) >= 16


BAD_BODIES = [
    ("no file part", multipart(part("client_id", b"k1")), "invalid_multipart"),
    (
        "two file parts",
        multipart(part("file", b"abc", "a.txt"), part("file", b"def", "b.txt")),
        "invalid_multipart",
    ),
    (
        "client_id after the file",
        multipart(part("file", b"abc", "a.txt"), part("client_id", b"k1")),
        "invalid_multipart",
    ),
    ("unknown field", multipart(part("other", b"x"), part("file", b"a", "a")), "invalid_multipart"),
    ("no filename", multipart(part("file", b"abc")), "invalid_multipart"),
    (
        "bad client_id",
        multipart(part("client_id", b"no spaces!"), part("file", b"a", "a")),
        "invalid_client_id",
    ),
    (
        "long client_id",
        multipart(part("client_id", b"k" * 65), part("file", b"a", "a")),
        "invalid_client_id",
    ),
    ("empty file", multipart(part("file", b"", "a.txt")), "empty_file"),
    ("truncated", multipart(part("file", b"abc", "a.txt"))[:-12], "invalid_multipart"),
    ("garbage", b"this is not multipart at all", "invalid_multipart"),
]


@pytest.mark.parametrize(("case", "body", "code"), BAD_BODIES, ids=[c for c, _, _ in BAD_BODIES])
async def test_bad_bodies_are_422_and_store_nothing(
    world: World, case: str, body: bytes, code: str
) -> None:
    resp = await upload(world, body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == code
    # The upload stream was never half-closed: the service stores nothing.
    assert not world.stub.completed


async def test_a_bad_content_type_or_header_is_422(world: World) -> None:
    body = multipart(part("file", b"abc", "a.txt"))
    resp = await world.http.post(UPLOAD, content=body, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_multipart"
    resp = await upload(world, body, **{"Idempotency-Key": "bad key"})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_client_id"
    resp = await upload(
        world,
        multipart(part("client_id", b"k2"), part("file", b"a", "a")),
        **{"Idempotency-Key": "k1"},
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_client_id"
    assert world.stub.calls == []


async def test_a_second_file_part_cancels_the_started_upload(world: World) -> None:
    body = multipart(part("file", b"abc" * 1000, "a.txt"), part("file", b"def", "b.txt"))

    async def sent() -> AsyncIterator[bytes]:
        for at in range(0, len(body), 1000):
            yield body[at : at + 1000]

    resp = await world.http.post(UPLOAD, content=sent(), headers=CTYPE)
    assert resp.status_code == 422
    assert world.stub.names() == ["UploadFile"]
    assert world.stub.upload_cancelled and not world.stub.completed


@pytest.mark.parametrize(
    ("status", "code", "http_status"),
    [
        (grpc.StatusCode.OUT_OF_RANGE, "quota_exceeded", 413),
        (grpc.StatusCode.OUT_OF_RANGE, "file_too_large", 413),
        (grpc.StatusCode.INVALID_ARGUMENT, "file_type_not_allowed", 422),
        (grpc.StatusCode.NOT_FOUND, "not_found", 404),
    ],
)
async def test_a_refusal_mid_stream_ends_the_request(
    world: World, status: grpc.StatusCode, code: str, http_status: int
) -> None:
    world.stub.errors["UploadFile"] = rpc_error(status, code)
    world.stub.fail_after_chunks = 1
    data = b"MZ" + b"\0" * (512 * 1024)

    async def sent() -> AsyncIterator[bytes]:
        body = multipart(part("file", data, "cat.png"))
        for at in range(0, len(body), 8192):
            yield body[at : at + 8192]

    resp = await world.http.post(UPLOAD, content=sent(), headers=CTYPE)
    assert resp.status_code == http_status, resp.text
    assert resp.json()["error"]["code"] == code
    # Refused at the first chunk: the rest of the body was never read into it.
    assert len(world.stub.chunks) == 1


async def test_the_upload_route_is_not_capped_at_the_json_limit(world: World) -> None:
    api = BodyLimitMiddleware(shared_api(), 1024, streamed=STREAMED_BODIES)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://gateway",
        headers={"Authorization": f"Bearer {token()}"},
    ) as http:
        body = multipart(part("file", b"x" * 10_000, "big.txt"))
        resp = await http.post(UPLOAD, content=body, headers=CTYPE)
        assert resp.status_code == 201, resp.text
        # Other routes keep the JSON limit.
        resp = await http.post("/api/v1/conversations/c1/files/uploads", content=b"x" * 2000)
        assert resp.status_code == 413
        # A declared length over the platform's cap is refused before any byte.
        resp = await http.post(
            UPLOAD, content=b"x", headers={**CTYPE, "Content-Length": str(6 * 1024**3)}
        )
        assert resp.status_code == 413
    assert b"".join(world.stub.chunks) == b"x" * 10_000


def query_of(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


async def signed(world: World, **fields: Any) -> dict[str, Any]:
    world.stub.file = sample_file(**fields)
    resp = await world.http.get("/api/v1/conversations/c1/files/f1")
    assert resp.status_code == 200, resp.text
    return cast(dict[str, Any], resp.json())


def png_download(world: World, **fields: Any) -> None:
    header = fpb.DownloadHeader(
        file=sample_file(**fields),
        variant=fpb.FILE_VARIANT_ORIGINAL,
        content_type=fields.get("content_type", "image/png"),
        size_bytes=6,
    )
    world.stub.download = [
        fpb.DownloadFileResponse(header=header),
        fpb.DownloadFileResponse(chunk=b"abc"),
        fpb.DownloadFileResponse(chunk=b"def"),
    ]


async def test_get_signs_urls_and_the_content_streams_with_safe_headers(world: World) -> None:
    out = await signed(world, has_thumbnail=True)
    assert out["status"] == "clean" and out["thumbnail_url"] and out["preview_url"] is None
    path, q = query_of(out["url"])
    assert path == "/api/v1/files/f1/content" and q["c"] == "c1" and q["v"] == "original"
    assert query_of(out["thumbnail_url"])[1]["v"] == "thumbnail"
    png_download(world)
    resp = await world.http.get(out["url"])
    assert resp.status_code == 200, resp.text
    assert resp.content == b"abcdef"
    assert resp.headers["content-type"] == "image/png"
    assert resp.headers["content-length"] == "6"
    assert resp.headers["content-disposition"] == (
        "inline; filename=\"photo.png\"; filename*=UTF-8''photo.png"
    )
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["content-security-policy"] == "sandbox"
    assert resp.headers["cache-control"] == "private, max-age=120"
    assert resp.headers["referrer-policy"] == "no-referrer"
    req = world.stub.calls[-1][1]
    assert req.conversation_id == "c1" and req.file_id == "f1"
    assert req.variant == fpb.FILE_VARIANT_ORIGINAL
    assert world.limiter.checked == [Action.FILE_READ, Action.FILE_DOWNLOAD]


@pytest.mark.parametrize(
    ("fields", "ctype", "disposition"),
    [
        ({"content_type": "text/html", "name": "x.html"}, "application/octet-stream", "attachment"),
        (
            {"content_type": "image/svg+xml", "name": "x.svg"},
            "application/octet-stream",
            "attachment",
        ),
        ({"content_type": "text/csv", "name": "x.csv"}, "text/plain; charset=utf-8", "attachment"),
        ({"content_type": "image/png", "download_only": True}, "image/png", "attachment"),
        ({"content_type": "application/pdf", "name": "r.pdf"}, "application/pdf", "inline"),
        ({"content_type": "bogus", "name": "x"}, "application/octet-stream", "attachment"),
    ],
)
async def test_only_inert_types_are_served_inline(
    world: World, fields: dict[str, Any], ctype: str, disposition: str
) -> None:
    out = await signed(world)
    png_download(world, **fields)
    resp = await world.http.get(out["url"])
    assert resp.status_code == 200
    assert resp.headers["content-type"] == ctype
    assert resp.headers["content-disposition"].startswith(disposition + ";")
    assert resp.headers["x-content-type-options"] == "nosniff"


async def test_a_unicode_name_is_sent_as_filename_star(world: World) -> None:
    out = await signed(world)
    png_download(world, name='r\u00e9sum\u00e9 "1".png')
    resp = await world.http.get(out["url"])
    assert resp.headers["content-disposition"] == (
        "inline; filename=\"r_sum_ _1_.png\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.png"
    )


async def test_a_pending_file_gets_a_url_that_answers_409(world: World) -> None:
    out = await signed(world, status=fpb.FILE_STATUS_PENDING)
    assert out["status"] == "pending" and out["url"]
    world.stub.errors["DownloadFile"] = rpc_error(
        grpc.StatusCode.FAILED_PRECONDITION, "file_pending"
    )
    resp = await world.http.get(out["url"])
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "file_pending"


async def test_an_infected_file_gets_no_url(world: World) -> None:
    out = await signed(world, status=fpb.FILE_STATUS_INFECTED)
    assert out["status"] == "infected"
    assert out["url"] is None and out["thumbnail_url"] is None and out["url_expires_at"] is None


@pytest.mark.parametrize(
    ("tenant", "user"), [("t1", "u2"), ("t2", "u1")], ids=["another user", "another tenant"]
)
async def test_a_url_used_by_anyone_else_is_404(world: World, tenant: str, user: str) -> None:
    out = await signed(world)
    png_download(world)
    resp = await world.http.get(
        out["url"], headers={"Authorization": f"Bearer {token(tenant, user)}"}
    )
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    assert "DownloadFile" not in world.stub.names()


async def test_a_url_needs_the_bearer_token(world: World) -> None:
    out = await signed(world)
    resp = await world.http.get(out["url"], headers={"Authorization": ""})
    assert resp.status_code == 401


async def test_a_tampered_url_is_404_and_an_expired_one_403(world: World) -> None:
    out = await signed(world)
    png_download(world)
    path, q = query_of(out["url"])
    for key, value in (("c", "c2"), ("v", "preview"), ("e", str(int(q["e"]) + 60)), ("s", "x")):
        resp = await world.http.get(path, params={**q, key: value})
        assert resp.status_code == 404, key
    resp = await world.http.get(path.replace("/f1/", "/f2/"), params=q)
    assert resp.status_code == 404
    world.clock.advance(121)
    resp = await world.http.get(out["url"])
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "url_expired"
    assert "DownloadFile" not in world.stub.names()


async def test_another_tenants_file_is_404(world: World) -> None:
    for rpc in ("GetFile", "ListFiles", "DeleteFile", "CompleteUpload"):
        world.stub.errors[rpc] = rpc_error(grpc.StatusCode.NOT_FOUND, "not_found")
    for method, path in (
        ("get", "/api/v1/conversations/c9/files/f1"),
        ("get", "/api/v1/conversations/c9/files"),
        ("delete", "/api/v1/conversations/c9/files/f1"),
        ("post", "/api/v1/conversations/c9/files/f1/complete"),
    ):
        resp = await world.http.request(method, path)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found", path


async def test_presign_complete_list_delete(world: World) -> None:
    resp = await world.http.post(
        "/api/v1/conversations/c1/files/uploads",
        json={"client_id": "k1", "name": "a.png", "size_bytes": 3, "content_type": "image/png"},
    )
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["url"].startswith("http://s3.local/") and out["headers"] == {"content-length": "3"}
    assert out["file"]["id"] == "f1" and out["expires_at"]
    req = world.stub.calls[-1][1]
    assert (req.client_id, req.name, req.size_bytes) == ("k1", "a.png", 3)
    resp = await world.http.post("/api/v1/conversations/c1/files/f1/complete")
    assert resp.status_code == 200 and resp.json()["id"] == "f1"
    resp = await world.http.get("/api/v1/conversations/c1/files", params={"limit": 5})
    assert resp.status_code == 200 and [f["id"] for f in resp.json()["files"]] == ["f1"]
    assert world.stub.calls[-1][1].limit == 5
    resp = await world.http.delete("/api/v1/conversations/c1/files/f1")
    assert resp.status_code == 204
    assert world.limiter.checked == [
        Action.FILE_UPLOAD,
        Action.FILE_UPLOAD,
        Action.FILE_READ,
        Action.FILE_UPLOAD,
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": "k 1", "name": "a", "size_bytes": 1},
        {"client_id": "k1", "name": "", "size_bytes": 1},
        {"client_id": "k1", "name": "a", "size_bytes": 0},
        {"client_id": "k1", "name": "a", "size_bytes": 6 * 1024**3},
        {"client_id": "k1", "name": "a", "size_bytes": 1, "content_type": "nope"},
        {"client_id": "k1", "name": "a", "size_bytes": 1, "extra": 1},
    ],
)
async def test_bad_presign_bodies_are_422(world: World, body: dict[str, Any]) -> None:
    resp = await world.http.post("/api/v1/conversations/c1/files/uploads", json=body)
    assert resp.status_code == 422 and resp.json()["error"]["code"]
    assert world.stub.calls == [] and world.limiter.checked == []


ROUTES = [
    ("post", UPLOAD, Action.FILE_UPLOAD),
    ("post", "/api/v1/conversations/c1/files/uploads", Action.FILE_UPLOAD),
    ("post", "/api/v1/conversations/c1/files/f1/complete", Action.FILE_UPLOAD),
    ("get", "/api/v1/conversations/c1/files", Action.FILE_READ),
    ("get", "/api/v1/conversations/c1/files/f1", Action.FILE_READ),
    ("delete", "/api/v1/conversations/c1/files/f1", Action.FILE_UPLOAD),
    ("get", "/api/v1/files/f1/content?c=c1&v=original&e=1&s=x", Action.FILE_DOWNLOAD),
]


@pytest.mark.parametrize(("method", "path", "action"), ROUTES)
async def test_every_route_spends_its_budget_first(
    world: World, method: str, path: str, action: Action
) -> None:
    world.limiter.refuse = True
    kwargs: dict[str, Any] = {}
    if path == UPLOAD:
        kwargs = {"content": multipart(part("file", b"a", "a")), "headers": CTYPE}
    elif path.endswith("/uploads"):
        kwargs = {"json": {"client_id": "k1", "name": "a", "size_bytes": 1}}
    resp = await world.http.request(method, path, **kwargs)
    assert resp.status_code == 429 and resp.headers["retry-after"] == "3"
    assert world.limiter.checked == [action]
    assert world.stub.calls == []


# Messages that carry an uploaded file, by REST and by socket.

SOCKET_CALLER = Caller(tenant_id="t1", user_id="u1", roles=frozenset({"member"}))


async def test_rest_send_passes_the_file_id_through(
    client: httpx.AsyncClient, conv_stub: Any, h: Any
) -> None:
    attachment = cpb.FileAttachment(
        file_id="f1", name="a.png", content_type="image/png", size_bytes=3
    )
    conv_stub.responses["SendMessage"] = cpb.SendMessageResponse(
        message=h.message(kind=cpb.MESSAGE_KIND_FILE, text="", file=attachment), created=True
    )
    resp = await client.post("/conversations/c1/messages", json={"file": {"file_id": "f1"}})
    assert resp.status_code == 201, resp.text
    sent = conv_stub.last("SendMessage")
    assert sent.kind == cpb.MESSAGE_KIND_FILE and sent.file.file_id == "f1" and not sent.file.url
    assert resp.json()["message"]["file"] == {
        "file_id": "f1",
        "url": "",
        "name": "a.png",
        "content_type": "image/png",
        "size_bytes": 3,
    }


@pytest.mark.parametrize(
    "file",
    [
        {},
        {"file_id": "f1", "url": "https://x.example/f", "name": "f"},
        {"file_id": "f1", "name": "a.png"},
        {"file_id": "f1", "size_bytes": 3},
        {"file_id": ""},
        {"url": "https://x.example/f"},
    ],
)
async def test_a_file_needs_either_an_id_or_a_link(
    client: httpx.AsyncClient, conv_stub: Any, h: Any, file: dict[str, Any]
) -> None:
    resp = await client.post("/conversations/c1/messages", json={"file": file})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_request"
    server = h.RoomServer()
    gw = SocketGateway(server, h.make_ops(conv_stub), JwtVerifier(hs256_secret="x" * 40), "gw-1")
    gw.sessions["sid1"] = Session(SOCKET_CALLER, "conn-1", 4e9)
    ack = await server.handlers["message:send"]("sid1", {"conversation_id": "c1", "file": file})
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_request"
    assert conv_stub.calls == []


async def test_socket_send_passes_the_file_id_through(h: Any) -> None:
    server, stub = h.RoomServer(), h.FakeConversation()
    gw = SocketGateway(server, h.make_ops(stub), JwtVerifier(hs256_secret="x" * 40), "gw-1")
    gw.sessions["sid1"] = Session(SOCKET_CALLER, "conn-1", 4e9)
    stub.responses["SendMessage"] = cpb.SendMessageResponse(
        message=h.message(file=cpb.FileAttachment(file_id="f1", name="a.png")), created=True
    )
    ack = await server.handlers["message:send"](
        "sid1", {"conversation_id": "c1", "client_msg_id": "k1", "file": {"file_id": "f1"}}
    )
    assert ack["ok"] is True, ack
    assert stub.last("SendMessage").file == cpb.FileAttachment(file_id="f1")
    assert ack["message"]["file"]["file_id"] == "f1"


async def test_file_updated_goes_to_the_conversations_room(h: Any) -> None:
    server = h.RoomServer()
    fanout = Fanout(server, h.opener())
    updated = sample_file(has_thumbnail=True, width=640, height=480)
    await fanout.handle(h.record(h.event(7, file_updated=fpb.FileUpdated(file=updated))))
    [(data, room)] = server.emitted("file:updated")
    assert room == "conv:t1:c1"
    assert data["event_seq"] == 7 and data["actor_id"] == "u1"
    # The REST shape of the file.
    assert data["id"] == "f1" and data["status"] == "clean" and data["has_thumbnail"] is True
    assert (data["width"], data["height"]) == (640, 480)
    assert data["created_at"] == "2023-11-14T22:13:20Z"


async def test_the_client_splits_chunks_to_the_rpc_limit() -> None:
    stub = FakeFiles([])
    client = FileClient(cast(Any, stub), 5.0, 60.0)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"a" * (2 * MAX_CHUNK_BYTES + 5)

    resp = await client.upload(SOCKET_CALLER, fpb.UploadStart(conversation_id="c1"), chunks())
    assert resp.created and stub.completed
    assert [len(c) for c in stub.chunks] == [MAX_CHUNK_BYTES, MAX_CHUNK_BYTES, 5]


async def test_platform_staff_read_through_the_escalated_ticket(world: World) -> None:
    world.stub.file = sample_file()
    resp = await world.http.get("/api/v1/conversations/c1/files/f1", params={"ticket_id": "tk1"})
    assert resp.status_code == 200, resp.text
    assert world.stub.calls[-1][1].ticket_id == "tk1"
    path, q = query_of(resp.json()["url"])
    assert q["t"] == "tk1"
    png_download(world)
    assert (await world.http.get(path, params=q)).status_code == 200
    assert world.stub.calls[-1][1].ticket_id == "tk1"
    # The ticket is signed: dropped or changed, the URL is nobody's.
    without = {k: v for k, v in q.items() if k != "t"}
    assert (await world.http.get(path, params=without)).status_code == 404
    assert (await world.http.get(path, params={**q, "t": "tk2"})).status_code == 404
    resp = await world.http.get("/api/v1/conversations/c1/files", params={"ticket_id": "tk1"})
    assert resp.status_code == 200 and world.stub.calls[-1][1].ticket_id == "tk1"


async def test_a_form_as_httpx_and_browsers_build_it(world: World) -> None:
    resp = await world.http.post(
        UPLOAD,
        files={"file": ("r\u00e9sum\u00e9 final.pdf", b"%PDF-1.7 data", "application/pdf")},
        data={"client_id": "form-1"},
    )
    assert resp.status_code == 201, resp.text
    start = world.stub.start
    assert start is not None
    assert (start.client_id, start.name) == ("form-1", "r\u00e9sum\u00e9 final.pdf")
    assert start.declared_content_type == "application/pdf"
    assert start.declared_size_bytes == len(b"%PDF-1.7 data")
    assert b"".join(world.stub.chunks) == b"%PDF-1.7 data"


async def test_a_chunked_body_over_the_hard_cap_is_413_and_stores_nothing() -> None:
    stub = FakeFiles([])
    client = FileClient(cast(Any, stub), 5.0, 60.0)

    def start(
        client_id: str, name: str, ctype: str, declared: int, chunks: AsyncIterator[bytes]
    ) -> asyncio.Task[fpb.UploadFileResponse]:
        first = fpb.UploadStart(conversation_id="c1", client_id=client_id, name=name)
        return asyncio.ensure_future(client.upload(SOCKET_CALLER, first, chunks))

    body = multipart(part("file", b"x" * 50_000, "a.bin"))

    async def chunks() -> AsyncIterator[bytes]:
        for at in range(0, len(body), 4096):
            yield body[at : at + 4096]

    upload = MultipartUpload(CTYPE["Content-Type"], None, None, 20_000, start)
    with pytest.raises(TooLarge) as exc:
        await upload.run(chunks())
    assert exc.value.code == "payload_too_large"
    assert stub.chunks and not stub.completed and stub.upload_cancelled


async def test_an_early_answer_ends_the_request_with_it(world: World) -> None:
    world.stub.created = False
    world.stub.answer_after_chunks = 1
    body = multipart(part("client_id", b"k1"), part("file", b"y" * 200_000, "a.bin"))
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for at in range(0, len(body), 4096):
            sent += 1
            yield body[at : at + 4096]

    resp = await world.http.post(UPLOAD, content=chunks(), headers=CTYPE)
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] is False
    assert len(world.stub.chunks) == 1 and not world.stub.completed
    # The rest of the body was never needed.
    assert sent < len(body) // 4096
