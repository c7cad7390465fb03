"""The clamd client against a real clamd (the devservers' ClamdServer, EICAR only)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from confab_devservers import ClamdServer
from conversation.clients.scanner import ClamdScanner, ScannerDown

pytestmark = pytest.mark.asyncio

# Built from parts so that no file of the repository is itself the signature.
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-" + "TEST-FILE!$H+H*").encode()


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_eicar_is_found(clamd_server: ClamdServer) -> None:
    scanner = ClamdScanner(clamd_server.host, clamd_server.port, 10)
    verdict = await scanner.scan(chunks(EICAR), len(EICAR))
    assert not verdict.clean
    assert "Eicar" in verdict.signature


async def test_clean_bytes_pass_in_many_frames(clamd_server: ClamdServer) -> None:
    scanner = ClamdScanner(clamd_server.host, clamd_server.port, 10)
    data = bytes(range(256)) * 4096  # 1 MiB, sixteen frames
    assert (await scanner.scan(chunks(data, 100_000), len(data))).clean
    assert await scanner.ping()


async def test_a_dead_scanner_is_down_not_clean(clamd_server: ClamdServer) -> None:
    scanner = ClamdScanner("127.0.0.1", dead_port(), 2)
    with pytest.raises(ScannerDown):
        await scanner.scan(chunks(b"hello"), 5)
    assert not await scanner.ping()


async def test_a_failing_source_is_not_a_scanner_outage(clamd_server: ClamdServer) -> None:
    class Broken(Exception):
        pass

    async def broken() -> AsyncIterator[bytes]:
        yield b"first frame"
        raise Broken("a sealed frame did not open")

    scanner = ClamdScanner(clamd_server.host, clamd_server.port, 10)
    with pytest.raises(Broken):
        await scanner.scan(broken(), 100)
