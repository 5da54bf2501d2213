"""The rules that keep metadata true, on their own: computed fields of a blob read back,
the ETag check, and which keys a download can put on a filesystem together."""

from __future__ import annotations

from factflow_storage.download.fetch import split_conflicts
from factflow_storage.metadata import describe_stored
from factflow_storage.providers.s3_metadata import etag_is_md5

SOURCE = {"key": "executions/d1/r/s/j.json", "execution_id": "d1", "route_id": "r", "stage": "s",
          "msg_id": "j.json", "content_length": 3, "checksum": "sha256:aa", "adapter": "x"}


def test_a_copied_blob_describes_the_key_it_is_stored_under():
    blob = describe_stored("executions/d2/r2/s2/moved.json", SOURCE, size=3)
    assert blob == {**SOURCE, "key": "executions/d2/r2/s2/moved.json", "execution_id": "d2", "route_id": "r2",
                    "stage": "s2", "msg_id": "moved.json", "copied_from": SOURCE["key"]}
    outside = describe_stored("elsewhere/j.json", SOURCE, size=3)
    assert outside["key"] == "elsewhere/j.json" and "execution_id" not in outside and "route_id" not in outside


def test_provenance_a_writer_set_is_kept_on_a_copy():
    blob = describe_stored("executions/d2/r2/s2/moved.json", {**SOURCE, "route_id": "chosen"}, size=3)
    assert blob["route_id"] == "chosen" and blob["execution_id"] == "d2"


def test_a_checksum_the_bytes_no_longer_match_is_not_served():
    assert describe_stored(SOURCE["key"], SOURCE, size=3) == SOURCE
    for blob in (describe_stored(SOURCE["key"], SOURCE, size=4),
                 describe_stored(SOURCE["key"], SOURCE, size=3, bytes_replaced=True)):
        assert "checksum" not in blob and blob["stale_checksum"] == "sha256:aa"
    assert describe_stored(SOURCE["key"], SOURCE, size=4)["content_length"] == 4


def test_only_a_plain_md5_etag_is_compared():
    md5 = "0e64b348274f3956ad809dc5357f0f16"
    assert etag_is_md5(md5, {})
    assert etag_is_md5(md5, {"x-amz-server-side-encryption": "AES256"})
    assert not etag_is_md5("0e64b348274f3956ad809dc5357f0f-2", {})
    assert not etag_is_md5(md5, {"x-amz-server-side-encryption": "aws:kms"})
    assert not etag_is_md5(md5, {"x-amz-server-side-encryption-customer-algorithm": "AES256"})
    assert not etag_is_md5(None, {})


def test_a_key_below_an_object_is_skipped_naming_both():
    entries = [("e/a", 1), ("e/a-b", 1), ("e/a/b", 2), ("e/a/b/c", 3), ("e/ab/c", 4)]
    kept, skipped = split_conflicts(entries)
    assert kept == [("e/a", 1), ("e/a-b", 1), ("e/ab/c", 4)]
    assert [row["key"] for row in skipped] == ["e/a/b", "e/a/b/c"]
    assert "'e/a/b'" in skipped[0]["reason"] and "'e/a'" in skipped[0]["reason"]


def test_a_copy_made_with_cp_on_a_filesystem_describes_its_own_key(file_storage, tmp_path):
    import shutil

    provider = file_storage.open()
    provider.write(SOURCE["key"], b"abc", {"adapter": "x"})
    root = tmp_path / "storage"
    (root / "executions/d2/r2/s2").mkdir(parents=True)
    for suffix in ("", ".meta.json"):
        shutil.copy(root / (SOURCE["key"] + suffix), root / ("executions/d2/r2/s2/moved.json" + suffix))
    blob = provider.metadata("executions/d2/r2/s2/moved.json")
    assert (blob["key"], blob["execution_id"], blob["msg_id"]) == ("executions/d2/r2/s2/moved.json", "d2", "moved.json")
    assert blob["copied_from"] == SOURCE["key"]
    assert blob["checksum"] == provider.metadata(SOURCE["key"])["checksum"]
