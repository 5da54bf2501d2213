"""Retention against what happens around a deletion (every provider; real radosgw for S3):
writers naming a candidate while a prune runs (``test_retention_concurrent``: for a minute,
beside a second prune), writes into an execution being deleted,
a prune killed with SIGKILL and run again, odd execution ids, a deleted execution
waited for, and the lineage index kept by a long-lived provider."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import orjson
import pytest
from click.testing import CliRunner

import factflow_storage
from factflow_storage.cli.main import cli
from factflow_storage.errors import Conflict
from factflow_storage.retention.delete import begin_deletion, delete_executions
from factflow_storage.retention.plan import plan_execution
from factflow_storage.retention.prune import dependencies, prune
from retention_support import KILLED_PRUNE, raw_names, write_execution


def run(storage, *args: str, stdin: bytes | None = None):
    env = {name: None for name in os.environ if name.startswith("FACTFLOW_")}
    env.update(storage.env, FACTFLOW_STORAGE_URI=storage.uri)
    return CliRunner().invoke(cli, list(args), env=env, input=stdin, catch_exceptions=False)


def one_line_error(result, *says: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for text in says:
        assert text in result.stderr, result.stderr


def test_a_reference_made_after_the_plan_keeps_its_parent(storage, provider):
    """A running execution names B's object once prune has planned to delete A and B."""
    write_execution(provider, "A", count=2)
    write_execution(provider, "B", count=2)
    write_execution(provider, "E", count=1, status="running")
    put_record = provider.put_record
    wrote = []

    def writer_meanwhile(name, data, **conditions):
        put_record(name, data, **conditions)
        if name.startswith("deletions/") and not wrote:  # prune has planned and begun
            wrote.append(provider.write("executions/E/route/use/late.txt", b"late",
                                        {"lineage": ["executions/B/route/fetch/m0000.json"]}))

    provider.put_record = writer_meanwhile
    result = prune(provider, older_than=0, confirm=True)
    provider.put_record = put_record
    assert wrote, "the writer never ran"
    assert [row["execution_id"] for row in result["executions"]] == ["A"]
    assert [(s["execution_id"], s["dependants"][0]["key"]) for s in result["skipped"]] == [
        ("B", "executions/E/route/use/late.txt")]

    assert provider.read("executions/B/route/fetch/m0000.json") == b'{"n":0}'
    assert provider.read_execution("B")["status"] == "completed"


def test_a_writer_that_sees_the_mark_is_refused_and_nothing_is_lost(storage, provider):
    """Writes during a deletion: into the execution itself, and naming it from a kept one."""
    write_execution(provider, "P", count=3)
    write_execution(provider, "E", count=1, status="running")
    many = provider.delete_many
    refused = []

    def writers_meanwhile(keys):
        for key, lineage in (("executions/P/route/fetch/late.json", []),
                             ("executions/E/route/use/late.txt", ["executions/P/route/fetch/m0001.json"])):
            try:
                provider.write(key, b"late", {"lineage": lineage})
            except Conflict as err:
                refused.append(str(err))
        many(keys)

    provider.delete_many = writers_meanwhile
    delete_executions(provider, ["P"], confirm=True)
    provider.delete_many = many
    assert len(refused) == 2 and all("being deleted" in text for text in refused), refused
    assert [info.key for info in provider.list("executions/P/")] == []
    assert not any(name.startswith("executions/P/") for name in raw_names(provider))
    assert not provider.exists("executions/E/route/use/late.txt")



def test_the_cli_refuses_a_put_into_an_execution_being_deleted(storage, provider):
    write_execution(provider, "P", count=1)
    write_execution(provider, "E", count=1, status="running")
    begin_deletion(provider, plan_execution(provider, "P"), force=False)
    one_line_error(run(storage, "storage", "put", "executions/P/route/fetch/x.json", stdin=b"{}"),
                   "being deleted")
    meta = orjson.dumps({"lineage": ["executions/P/route/fetch/m0000.json"]}).decode()
    one_line_error(run(storage, "storage", "put", "executions/E/route/use/x.txt", "--metadata", meta, stdin=b"x"),
                   "executions/P/route/fetch/m0000.json", "being deleted")
    assert not provider.exists("executions/P/route/fetch/x.json")
    assert not provider.exists("executions/E/route/use/x.txt")


def test_prune_again_finishes_what_a_killed_prune_left_deleting(storage, provider):
    write_execution(provider, "keep", count=2)
    before = raw_names(provider)
    write_execution(provider, "X", count=10, status="failed")
    env = storage.cli_env()
    package_root = os.path.dirname(os.path.dirname(factflow_storage.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    child = subprocess.run([sys.executable, "-c", KILLED_PRUNE], check=False, env=env, capture_output=True,
                           timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert 0 < len(list(provider.list("executions/X/"))) < 20
    assert provider.read_execution("X")["status"] == "deleting"
    again = run(storage, "storage", "prune", "--older-than", "0s", "--status", "failed", "--yes", "-o", "json")
    assert again.exit_code == 0, again.stderr
    [row] = orjson.loads(again.stdout)["executions"]
    assert (row["execution_id"], row["action"]) == ("X", "resume")
    assert list(provider.list("executions/X/")) == []
    assert raw_names(provider) - before == {"_factflow/deletions/X.json"}
    # a prune selecting by other statuses finishes it as well
    write_execution(provider, "Y", count=1, status="failed")
    begin_deletion(provider, plan_execution(provider, "Y"), force=False)
    other = run(storage, "storage", "prune", "--older-than", "0s", "--status", "cancelled", "--yes", "-o", "json")
    assert [r["execution_id"] for r in orjson.loads(other.stdout)["executions"]] == ["Y"]
    assert list(provider.list("executions/Y/")) == []


def test_odd_execution_ids_are_refused_at_write_time_as_delete_refuses_them(storage, provider):
    for key, says in (("executions/_factflow/route/stage/m", "reserved"),
                      (f"executions/{'e' * 240}/route/stage/m", "longer than 200 bytes")):
        one_line_error(run(storage, "storage", "put", key, stdin=b"x"), "invalid execution id", says)
        execution_id = key.split("/")[1]
        one_line_error(run(storage, "execution", "delete", execution_id, "--yes"), "invalid execution id", says)
    assert list(provider.list("")) == []
    one_line_error(run(storage, "execution", "delete", "e" * 300, "--yes"), "longer than 200 bytes")
    longest = "e" * 200
    provider.write(f"executions/{longest}/route/stage/m", b"x")
    done = delete_executions(provider, [longest], confirm=True)
    assert done["executions"][0]["deleted"]["objects"] == 1 and list(provider.list("")) == []


@pytest.mark.parametrize("args", [["storage", "watch", "--execution", "gone", "--timeout", "20s"],
                                  ["execution", "wait", "gone", "--timeout", "20s"],
                                  ["execution", "show", "gone"], ["storage", "download", "gone", "-d", "out"]])
def test_a_deleted_execution_is_said_deleted_instead_of_waited_for(storage, provider, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_execution(provider, "gone", count=1)
    delete_executions(provider, ["gone"], confirm=True)
    result = run(storage, *args)  # before, watch and wait waited out their timeout
    one_line_error(result, "execution gone was deleted at ", " by ")


def test_deps_remembers_an_execution_written_again_after_its_deletion(storage, provider):
    write_execution(provider, "P", count=1)
    write_execution(provider, "E", count=1, lineage_into="P")
    delete_executions(provider, ["E"], confirm=True)
    write_execution(provider, "E", count=1, lineage_into="P")  # the same provider object, as a server keeps
    assert [ref["parent"] for ref in dependencies(provider, "E")["depends_on"]] == ["executions/P/route/fetch/m0000.json"]
    delete_executions(provider, ["E"], confirm=True)
    assert not any(name.startswith("_factflow/lineage/") for name in raw_names(provider))


def copy_with_metadata(storage, provider, source: str, target: str) -> None:
    """What another tool does: ``cp -a`` of object and sidecar, or an S3 server-side copy
    (as ``aws s3 cp``), which keeps the user metadata."""
    if storage.kind == "file":
        os.makedirs(os.path.dirname(os.path.join(provider.root, target)), exist_ok=True)
        for suffix in ("", ".meta.json"):
            subprocess.run(["cp", "-a", os.path.join(provider.root, source + suffix),
                            os.path.join(provider.root, target + suffix)], check=True)
        return
    from minio.commonconfig import CopySource

    provider._client.copy_object(bucket_name=provider.bucket, object_name=target,
                                 source=CopySource(provider.bucket, source))


def test_lineage_copied_by_another_tool_is_found_by_fsck_and_protected_after_repair(storage, provider):
    write_execution(provider, "P", count=1)
    write_execution(provider, "E", count=1, lineage_into="P")
    copied = "executions/F/route/parse/m0000.txt"
    copy_with_metadata(storage, provider, "executions/E/route/parse/m0000.txt", copied)
    assert "executions/P/route/fetch/m0000.json" in provider.metadata(copied)["lineage"]
    delete_executions(provider, ["E"], confirm=True, force=True)  # only the copy names P now
    found = run(storage, "storage", "fsck", "executions/", "-o", "json")
    assert found.exit_code == 1, found.stderr
    report = orjson.loads(found.stdout)
    assert report["found"].get("unindexed_lineage") == 1, report
    assert [f["path"] for f in report["findings"] if f["kind"] == "unindexed_lineage"] == [copied]
    repaired = run(storage, "storage", "fsck", "--repair", "-o", "json")
    assert orjson.loads(repaired.stdout)["repaired"].get("unindexed_lineage") == 1, repaired.stdout
    assert [ref["key"] for ref in dependencies(provider, "P")["dependants"]] == [copied]
    one_line_error(run(storage, "execution", "delete", "P", "--yes"), "F (executions/F/route/parse/m0000.txt)")
    assert orjson.loads(run(storage, "storage", "fsck", "-o", "json").stdout)["found"].get("unindexed_lineage") is None


def plant_unlisted(storage, provider, tmp_path, s3_server) -> list[str]:
    """What other tools leave under ``executions/P/`` that no listing shows; returns the
    names planted (outside the root: a file a link points at, which must survive)."""
    if storage.kind == "file":
        base = os.path.join(provider.root, "executions", "P", "route")
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "keep.txt").write_bytes(b"keep")
        os.symlink(outside / "keep.txt", os.path.join(base, "link"))
        os.symlink(outside, os.path.join(base, "dirlink"))
        os.mkfifo(os.path.join(base, "fifo"))
        return ["link", "dirlink", "fifo"]
    names = ["executions/P//dbl", "executions/P/x.meta.json", "executions/P/./dot"]
    body = tmp_path / "body"
    body.write_bytes(b"x")
    for name in names:  # the aws cli, as another tool would write them
        subprocess.run(s3_server.aws("s3api", "put-object", "--bucket", provider.bucket, "--key", name,
                                     "--body", str(body)), env=s3_server.tool_env(), check=True,
                       capture_output=True, timeout=120)
    assert names[2] in raw_names(provider)
    return names


def test_delete_removes_what_the_listing_hides_and_nothing_outside(storage, provider, tmp_path, request):
    write_execution(provider, "P", count=1)
    s3_server = request.getfixturevalue("s3_server") if storage.kind == "s3" else None
    planted = plant_unlisted(storage, provider, tmp_path, s3_server)
    assert list(provider.list("executions/P/"))  # the ordinary objects are there too
    found = run(storage, "storage", "fsck", "executions/", "-o", "json")
    assert found.exit_code == 1 and orjson.loads(found.stdout)["found"] == {"unlisted_entry": 3}, found.stdout
    done = delete_executions(provider, ["P"], confirm=True)
    assert done["executions"][0]["deleted"]["unlisted"] == 3
    assert not any(name.startswith("executions/P") for name in raw_names(provider))
    if storage.kind == "file":
        assert not os.path.lexists(os.path.join(provider.root, "executions", "P"))
        assert (tmp_path / "outside" / "keep.txt").read_bytes() == b"keep", planted


def change_in_place(storage, provider, key: str, data: bytes) -> None:
    """Another tool rewrites the bytes and keeps everything a stat shows: on the
    filesystem the same inode, size and times (``rsync --inplace``, a restore); on S3 a
    put of the same size carrying the object's own metadata headers."""
    if storage.kind == "file":
        path = os.path.join(provider.root, key)
        before = os.stat(path)
        with open(path, "r+b") as handle:
            handle.write(data)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert os.stat(path).st_ino == before.st_ino
        return
    import io

    stat = provider._client.stat_object(bucket_name=provider.bucket, object_name=key)
    headers = {name: value for name, value in stat.metadata.items() if name.lower().startswith("x-amz-meta-")}
    provider._client.put_object(bucket_name=provider.bucket, object_name=key, data=io.BytesIO(data),
                                length=len(data), content_type=stat.content_type, metadata=headers)


def test_fsck_verify_reads_the_data_and_finds_bytes_changed_in_place(storage, provider):
    write_execution(provider, "P", count=2)
    key = "executions/P/route/parse/m0001.txt"
    change_in_place(storage, provider, key, b"TEXT 1")
    if storage.kind == "s3":  # the ETag no longer matches: the metadata read itself says so
        blob = provider.metadata(key)
        assert "checksum" not in blob and blob["stale_checksum"].startswith("sha256:"), blob
        return
    plain = run(storage, "storage", "fsck", "-o", "json")
    verified = run(storage, "storage", "fsck", "--verify", "-o", "json")
    assert verified.exit_code == 1, verified.stdout
    report = orjson.loads(verified.stdout)
    assert report["found"].get("changed_bytes") == 1, (report, plain.stdout)
    [finding] = [f for f in report["findings"] if f["kind"] == "changed_bytes"]
    assert finding["path"] == key and not finding["repaired"]
    assert provider.read(key) == b"TEXT 1"  # reported, never blessed: the metadata is as it was
    assert orjson.loads(run(storage, "storage", "fsck", "--verify", "executions/P/route/fetch/", "-o", "json")
                        .stdout)["found"] == {}


def test_a_deleted_execution_is_said_deleted_over_the_api_too(storage, provider):
    from factflow_storage.service import StorageService
    from server_fixture import running_server

    write_execution(provider, "gone", count=1)
    delete_executions(provider, ["gone"], confirm=True)
    with running_server(StorageService(provider)) as url:
        for args in (["storage", "watch", "--execution", "gone", "--timeout", "20s"],
                     ["execution", "wait", "gone", "--timeout", "20s"], ["execution", "show", "gone"]):
            result = CliRunner().invoke(cli, ["--api", url, *args], env={"FACTFLOW_API_URL": None},
                                        catch_exceptions=False)
            one_line_error(result, "execution gone was deleted at ", " by ")
