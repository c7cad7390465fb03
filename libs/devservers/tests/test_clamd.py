from __future__ import annotations

import io
import socket
import struct

import aioclamd
import pytest

from confab_devservers import ClamdServer, eicar_bytes


@pytest.mark.asyncio
async def test_eicar_is_found_and_clean_bytes_pass(clamd_server: ClamdServer) -> None:
    client = aioclamd.ClamdAsyncClient(clamd_server.host, clamd_server.port, timeout=30)
    assert await client.ping() == "PONG"
    found = await client.instream(io.BytesIO(eicar_bytes()))
    assert found == {"stream": ("FOUND", "Eicar-Test-Signature.UNOFFICIAL")}
    # The standard allows trailing whitespace after the 68 bytes.
    padded = await client.instream(io.BytesIO(eicar_bytes() + b"\r\n"))
    assert padded["stream"][0] == "FOUND"
    clean = await client.instream(io.BytesIO(b"just a holiday photo, honestly"))
    assert clean == {"stream": ("OK", None)}


def test_a_110_mib_stream_gets_a_verdict(clamd_server: ClamdServer) -> None:
    # clamd's default StreamMaxLength (25 MiB) would answer "size limit exceeded".
    chunk = b"\x00" * (1024 * 1024)
    with socket.create_connection((clamd_server.host, clamd_server.port), timeout=60) as sock:
        sock.sendall(b"zINSTREAM\0")
        for _ in range(110):
            sock.sendall(struct.pack("!L", len(chunk)) + chunk)
        sock.sendall(struct.pack("!L", 0))
        reply = sock.recv(256)
    assert reply == b"stream: OK\0"
