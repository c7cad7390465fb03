from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from aiobotocore.session import get_session
from botocore.config import Config

from confab_devservers import S3Server


def _client(server: S3Server) -> Any:
    return get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@pytest.mark.asyncio
async def test_put_get_delete(s3_server: S3Server) -> None:
    async with _client(s3_server) as s3:
        buckets = await s3.list_buckets()
        assert s3_server.bucket in [b["Name"] for b in buckets["Buckets"]]
        body = b"\x00confab\xff" * 1000
        await s3.put_object(
            Bucket=s3_server.bucket,
            Key="t/a/c/b/f/1/original",
            Body=body,
            Metadata={"tenant": "a", "conversation": "b"},
        )
        head = await s3.head_object(Bucket=s3_server.bucket, Key="t/a/c/b/f/1/original")
        assert head["ContentLength"] == len(body)
        assert head["Metadata"] == {"tenant": "a", "conversation": "b"}
        got = await s3.get_object(Bucket=s3_server.bucket, Key="t/a/c/b/f/1/original")
        async with got["Body"] as stream:
            assert await stream.read() == body
        await s3.delete_object(Bucket=s3_server.bucket, Key="t/a/c/b/f/1/original")
        listed = await s3.list_objects_v2(Bucket=s3_server.bucket, Prefix="t/a/")
        assert listed.get("KeyCount", 0) == 0


@pytest.mark.asyncio
async def test_multipart_upload(s3_server: S3Server) -> None:
    part = b"p" * (5 * 1024 * 1024)
    async with _client(s3_server) as s3:
        key = "t/a/c/b/f/multi/original"
        upload = await s3.create_multipart_upload(Bucket=s3_server.bucket, Key=key)
        parts = []
        for number, data in enumerate([part, b"tail"], start=1):
            answer = await s3.upload_part(
                Bucket=s3_server.bucket,
                Key=key,
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=data,
            )
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        await s3.complete_multipart_upload(
            Bucket=s3_server.bucket,
            Key=key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts},
        )
        head = await s3.head_object(Bucket=s3_server.bucket, Key=key)
        assert head["ContentLength"] == len(part) + 4


@pytest.mark.asyncio
async def test_presigned_put(s3_server: S3Server) -> None:
    key = "t/a/c/b/f/2/staging"
    async with _client(s3_server) as s3:
        url = await s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": s3_server.bucket, "Key": key, "ContentType": "image/png"},
            ExpiresIn=120,
        )
        async with httpx.AsyncClient() as http:
            put = await http.put(url, content=b"png-bytes", headers={"Content-Type": "image/png"})
            assert put.status_code == 200, put.text
            # The signature covers the content type: another one is refused.
            wrong = await http.put(url, content=b"x", headers={"Content-Type": "text/html"})
            assert wrong.status_code == 403
        head = await s3.head_object(Bucket=s3_server.bucket, Key=key)
        assert head["ContentLength"] == len(b"png-bytes")
        assert head["ContentType"] == "image/png"


def test_restart_keeps_port_bucket_and_objects(tmp_path: Path) -> None:
    with S3Server(tmp_path) as server:
        client = server.client()
        try:
            client.put_object(Bucket=server.bucket, Key="k", Body=b"v")
            port = server.port
            server.restart()
            assert server.port == port
            assert client.get_object(Bucket=server.bucket, Key="k")["Body"].read() == b"v"
        finally:
            client.close()
    assert not server.running
