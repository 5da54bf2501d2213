"""S3 fsck of objects whose companion record is gone, and of objects without factflow
metadata, through the CLI against the suite's real S3 server."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys

import orjson
import pytest

from factflow_storage import create_storage_provider
from factflow_storage.providers import s3_metadata as meta
from factflow_storage.providers import s3_transfer

pytestmark = pytest.mark.s3

SPILLED = "executions/e1/route-a/stage-b/spilled.bin"
STREAMED = "executions/e1/route-a/stage-b/streamed.bin"


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factflow_storage", *args], env=env, capture_output=True, timeout=60)


def _fsck(env: dict, *args: str) -> tuple[int, dict]:
    result = _cli(env, "--output", "json", "storage", "fsck", "--grace", "0", *args)
    assert "Traceback" not in result.stderr.decode(), result.stderr
    return result.returncode, orjson.loads(result.stdout)


def test_a_missing_companion_record_is_rebuilt_from_the_object(s3_server, monkeypatch):
    monkeypatch.setattr(s3_transfer, "PART_SIZE", 5 * 1024 * 1024)  # S3's smallest part
    bucket = s3_server.new_bucket()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    env.update(s3_server.env(), FACTFLOW_STORAGE_URI=f"minio://{bucket}")
    provider = create_storage_provider(f"minio://{bucket}", s3_server.options())
    spilled, streamed = os.urandom(3000), os.urandom(5 * 1024 * 1024 + 777)
    provider.write(SPILLED, spilled, {"pad": "p" * 3000, "content_type": "application/x-thing"})
    provider.write(STREAMED, io.BytesIO(streamed))  # multipart: its blob is always a record
    provider.write("executions/e1/route-a/stage-b/healthy.txt", b"fine")
    for key in (SPILLED, STREAMED):  # deleted by hand
        pointer = provider._current_write_id(key, provider._name(key))
        provider.delete_record(meta.companion_name(key, pointer))
    broken = _cli(env, "storage", "metadata", SPILLED)
    assert broken.returncode == 1 and "missing" in broken.stderr.decode()

    code, found = _fsck(env)
    assert code == 1 and found["found"] == {"missing_record": 2} and found["unrepaired"] == 2
    assert sorted(f["path"] for f in found["findings"]) == [SPILLED, STREAMED]

    code, fixed = _fsck(env, "--repair")
    assert code == 0 and fixed["repaired"] == {"missing_record": 2} and fixed["unrepaired"] == 0, fixed
    for key, data in ((SPILLED, spilled), (STREAMED, streamed)):
        got = _cli(env, "storage", "get", key)
        assert got.returncode == 0 and got.stdout == data, got.stderr
        described = orjson.loads(_cli(env, "--output", "json", "storage", "metadata", key).stdout)
        assert described["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert described["content_length"] == len(data) and described["key"] == key
        assert (described["execution_id"], described["route_id"], described["stage"]) == ("e1", "route-a", "stage-b")
    # The readable content-type header survived into the rebuilt blob.
    assert provider.metadata(SPILLED)["content_type"] == "application/x-thing"
    assert _fsck(env) == (0, _fsck(env)[1]) and _fsck(env)[1]["found"] == {}


def test_an_object_another_tool_wrote_is_counted_but_not_a_problem(s3_server):
    bucket = s3_server.new_bucket()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    env.update(s3_server.env(), FACTFLOW_STORAGE_URI=f"minio://{bucket}")
    client = s3_server.client()
    client.put_object(bucket_name=bucket, object_name="other/tool.txt", data=io.BytesIO(b"x"), length=1)
    code, found = _fsck(env, "--repair")
    # A bucket shared with other tools holds such objects by design: listed, not a failure.
    assert code == 0 and found["found"] == {"foreign_object": 1} and found["unrepaired"] == 0, found
    assert [f["path"] for f in found["findings"]] == ["other/tool.txt"]
    assert _cli(env, "storage", "get", "other/tool.txt").stdout == b"x"  # still reads, untouched
