"""Objects that rclone and the aws cli put are listed, read and shown by ``metadata``, and
what factflow writes is plain S3 to them."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from factflow_storage import create_storage_provider
from s3_support import factflow, tool

pytestmark = pytest.mark.s3

PAYLOAD = b"col_a,col_b\n1,2\n" * 1000


@pytest.fixture
def uploaded(s3_server, bucket, tmp_path) -> dict[str, str]:
    """One object each from rclone and the aws cli; their content types, as each tool sets them."""
    source = tmp_path / "table.csv"
    source.write_bytes(PAYLOAD)
    tool(s3_server, ["rclone", "copyto", str(source), f"ffs3:{bucket}/tools/rclone/table.csv"])
    tool(s3_server, s3_server.aws("s3", "cp", str(source), f"s3://{bucket}/tools/aws/table.csv"))
    return {"tools/aws/table.csv": "aws", "tools/rclone/table.csv": "rclone"}


def test_other_tools_objects_are_listed_read_and_described(s3_server, bucket, uploaded):
    provider = create_storage_provider(f"minio://{bucket}", s3_server.options())
    assert [(info.key, info.size) for info in provider.list("tools/")] == [(key, len(PAYLOAD)) for key in uploaded]
    for key in uploaded:
        assert provider.read(key) == PAYLOAD
        with provider.open(key, start=12, length=4) as stream:
            assert stream.read() == PAYLOAD[12:16]
        blob = provider.metadata(key)
        assert blob["key"] == key
        assert blob["content_length"] == len(PAYLOAD)
        assert blob["content_type"].startswith("text/csv")
        assert blob["etag"] == hashlib.md5(PAYLOAD).hexdigest()
        assert blob["created_at"].endswith("Z")
    assert "mtime" in provider.metadata("tools/rclone/table.csv")["user_metadata"]


def test_the_cli_shows_other_tools_objects(s3_server, bucket, uploaded):
    rows = [orjson.loads(line) for line in
            factflow(s3_server, bucket, "storage", "list", "--prefix", "tools/", "--output", "json").stdout.splitlines()]
    assert [row["key"] for row in rows] == list(uploaded)
    browse = orjson.loads(factflow(s3_server, bucket, "storage", "browse", "tools/", "--output", "json").stdout)
    assert browse["common_prefixes"] == ["tools/aws/", "tools/rclone/"]
    for key in uploaded:
        assert factflow(s3_server, bucket, "storage", "get", key).stdout == PAYLOAD
        blob = orjson.loads(factflow(s3_server, bucket, "storage", "metadata", key, "--output", "json").stdout)
        assert blob["content_length"] == len(PAYLOAD)


def test_factflow_objects_are_plain_s3_to_other_tools(s3_server, bucket):
    provider = create_storage_provider(f"minio://{bucket}", s3_server.options())
    provider.write("made/by/factflow.csv", PAYLOAD, {"pad": "p" * 3000})  # metadata in a companion record
    provider.write_execution("e1", {"execution_id": "e1", "status": "running"})
    assert tool(s3_server, ["rclone", "cat", f"ffs3:{bucket}/made/by/factflow.csv"]).stdout == PAYLOAD
    assert tool(s3_server, s3_server.aws("s3", "cp", f"s3://{bucket}/made/by/factflow.csv", "-")).stdout == PAYLOAD
    head = orjson.loads(tool(s3_server, s3_server.aws("s3api", "head-object", "--bucket", bucket, "--key",
                                                      "made/by/factflow.csv")).stdout)
    assert head["ContentType"] == "text/csv"
    assert head["ContentLength"] == len(PAYLOAD)
