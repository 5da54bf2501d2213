"""Metadata that stays true when the aws cli and rclone copy and overwrite factflow's
objects, and factflow objects whose well-known fields those tools can read."""

from __future__ import annotations

import hashlib
import json

import orjson
import pytest

from factflow_storage.providers.s3_transfer import PART_SIZE
from s3_support import factflow, tool

pytestmark = pytest.mark.s3

SOURCE = "executions/d1/r/s/j.json"
BIG_BLOB_SOURCE = "executions/d1/r/s/big-meta.json"
DATA = b'{"answer": 42}\n'


def cli_metadata(s3_server, bucket: str, key: str) -> dict:
    return orjson.loads(factflow(s3_server, bucket, "storage", "metadata", key, "--output", "json").stdout)


def head(s3_server, bucket: str, key: str) -> dict:
    return orjson.loads(tool(s3_server, s3_server.aws("s3api", "head-object", "--bucket", bucket, "--key", key)).stdout)


def test_copies_by_other_tools_report_their_own_key_and_provenance(s3_server, bucket, s3, tmp_path):
    s3.write(SOURCE, DATA, {"adapter": "scraper", "lineage": ["executions/d0/r/s/parent"]})
    s3.write(BIG_BLOB_SOURCE, DATA, {"pad": "p" * 3000})  # its blob lives in a companion record
    copies = {
        "executions/d2/r2/s2/moved.json": SOURCE,
        "executions/d3/r3/s3/by-rclone.json": SOURCE,
        "executions/d2/r2/s2/big-copy.json": BIG_BLOB_SOURCE,
    }
    tool(s3_server, s3_server.aws("s3", "cp", f"s3://{bucket}/{SOURCE}", f"s3://{bucket}/executions/d2/r2/s2/moved.json"))
    tool(s3_server, ["rclone", "copyto", f"ffs3:{bucket}/{SOURCE}",
                     f"ffs3:{bucket}/executions/d3/r3/s3/by-rclone.json"])
    tool(s3_server, s3_server.aws("s3", "cp", f"s3://{bucket}/{BIG_BLOB_SOURCE}",
                                  f"s3://{bucket}/executions/d2/r2/s2/big-copy.json"))
    for copy, source in copies.items():
        _, execution_id, route_id, stage, msg_id = copy.split("/")
        blob = cli_metadata(s3_server, bucket, copy)
        assert (blob["key"], blob["execution_id"], blob["route_id"], blob["stage"], blob["msg_id"]) == \
            (copy, execution_id, route_id, stage, msg_id)
        assert blob["copied_from"] == source
        assert blob["content_length"] == len(DATA)
        assert blob["checksum"] == "sha256:" + hashlib.sha256(DATA).hexdigest()
    assert cli_metadata(s3_server, bucket, "executions/d2/r2/s2/moved.json")["adapter"] == "scraper"
    # The source's own metadata is untouched.
    assert cli_metadata(s3_server, bucket, SOURCE)["key"] == SOURCE

    out = tmp_path / "out"
    factflow(s3_server, bucket, "storage", "download", "d2", "--output-dir", str(out))
    sidecar = orjson.loads((out / "executions/d2/r2/s2/moved.json.meta.json").read_bytes())
    assert sidecar["key"] == "executions/d2/r2/s2/moved.json" and sidecar["execution_id"] == "d2"

    # The source goes (and its companion record with it): the copy is still described.
    s3.delete(BIG_BLOB_SOURCE)
    blob = s3.metadata("executions/d2/r2/s2/big-copy.json")
    assert blob["key"] == "executions/d2/r2/s2/big-copy.json" and blob["execution_id"] == "d2"
    assert s3.read("executions/d2/r2/s2/big-copy.json") == DATA


def test_bytes_replaced_by_another_tool_are_not_described_by_the_old_checksum(s3_server, bucket, s3, tmp_path):
    key = "executions/e1/r/s/replaced.json"
    stored = s3.write(key, DATA, {"adapter": "scraper"})
    kept_metadata = head(s3_server, bucket, key)["Metadata"]
    same_size = tmp_path / "same-size.json"
    same_size.write_bytes(DATA.replace(b"42", b"43"))
    # An operator fixes the bytes and carries the old metadata over.
    tool(s3_server, s3_server.aws("s3api", "put-object", "--bucket", bucket, "--key", key, "--body", str(same_size),
                                  "--metadata", json.dumps(kept_metadata)))
    blob = cli_metadata(s3_server, bucket, key)
    assert "checksum" not in blob
    assert blob["stale_checksum"] == stored["checksum"]
    assert blob["adapter"] == "scraper" and blob["content_length"] == len(DATA)

    longer = tmp_path / "longer.json"
    longer.write_bytes(DATA * 3)
    tool(s3_server, s3_server.aws("s3api", "put-object", "--bucket", bucket, "--key", key, "--body", str(longer),
                                  "--metadata", json.dumps(kept_metadata)))
    blob = s3.metadata(key)
    assert blob["content_length"] == 3 * len(DATA) and "checksum" not in blob
    assert s3.read(key) == DATA * 3


def test_other_tools_show_the_well_known_fields(s3_server, bucket, s3):
    key = "executions/e7/fetch/html/msg-001.json"
    stored = s3.write(key, DATA, {"adapter": "scraper", "config_hash": "c0ffee"})
    shown = head(s3_server, bucket, key)
    print("\naws s3api head-object:\n" + json.dumps(shown, indent=2))
    metadata = shown["Metadata"]
    assert {name: metadata[name] for name in ("checksum", "execution-id", "route-id", "stage", "msg-id",
                                             "content-type")} == {
        "checksum": stored["checksum"], "execution-id": "e7", "route-id": "fetch", "stage": "html",
        "msg-id": "msg-001.json", "content-type": "application/json"}
    listed = orjson.loads(tool(s3_server, ["rclone", "lsjson", "--metadata", f"ffs3:{bucket}/{key}"]).stdout)
    assert listed[0]["Metadata"]["checksum"] == stored["checksum"]
    assert listed[0]["Metadata"]["execution-id"] == "e7"

    # A blob too large to be inline, and a multipart object: the fields are still readable
    # (a multipart object's checksum is known only after its headers are sent).
    s3.write(key, DATA, {"pad": "p" * 3000})
    assert head(s3_server, bucket, key)["Metadata"]["checksum"] == s3.metadata(key)["checksum"]
    big = "executions/e7/fetch/html/large.bin"
    s3.write(big, b"x" * (PART_SIZE + 10))
    metadata = head(s3_server, bucket, big)["Metadata"]
    assert metadata["execution-id"] == "e7" and metadata["msg-id"] == "large.bin"
    assert sum(len(name) + len(value) for name, value in metadata.items()) <= 2048


def test_a_multipart_upload_of_a_regular_file_carries_its_checksum(s3_server, bucket, s3, tmp_path):
    source = tmp_path / "large.bin"
    source.write_bytes(b"y" * (2 * PART_SIZE + 10))
    key = "executions/e7/fetch/html/large-file.bin"
    factflow(s3_server, bucket, "storage", "put", key, "--file", str(source))
    expected = "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
    assert head(s3_server, bucket, key)["Metadata"]["checksum"] == expected == s3.metadata(key)["checksum"]
    listed = orjson.loads(tool(s3_server, ["rclone", "lsjson", "--metadata", f"ffs3:{bucket}/{key}"]).stdout)
    assert listed[0]["Metadata"]["checksum"] == expected
    with source.open("rb") as handle:  # from where a reader stands, as the upload sends it
        handle.read(10)
        s3.write(key, handle)
    rest = "sha256:" + hashlib.sha256(source.read_bytes()[10:]).hexdigest()
    assert head(s3_server, bucket, key)["Metadata"]["checksum"] == rest == s3.metadata(key)["checksum"]
