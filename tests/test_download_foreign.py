"""``download`` of what other tools left: objects without a sha256 (fetched once, then
compared by size and ETag or mtime), keys a filesystem cannot hold together (``a`` and
``a/b``), and the modes of the files written. Each in direct mode and with ``--api``."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import time

import orjson
import pytest

from factflow_storage.service import StorageService
from server_fixture import running_server
from tree_support import files_under

MODES = ("direct", "api")
FOREIGN = {f"executions/F1/tool/raw/part-{n}.csv": f"n,{n}\n".encode() * 100 for n in range(3)}


@contextlib.contextmanager
def cli_for(storage, mode: str):
    """A function running ``factflow storage download`` against ``storage`` in ``mode``."""
    service = StorageService(storage.open())
    with (running_server(service) if mode == "api" else contextlib.nullcontext()) as url:
        env = storage.cli_env()
        if url:
            env["FACTFLOW_API_URL"] = url

        def run(*args: str, umask: int | None = None) -> subprocess.CompletedProcess:
            done = subprocess.run([sys.executable, "-m", "factflow_storage", "storage", "download", *args],
                                  env=env, capture_output=True, text=True, timeout=120,
                                  preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
            assert done.returncode == 0, done.stderr
            return done

        yield run, service
    service.provider.close()


def put_foreign(storage, s3_server, objects: dict[str, bytes], tmp_path) -> None:
    """Objects written by another tool: the aws cli on S3, plain files on a filesystem."""
    for key, data in objects.items():
        if storage.kind == "s3":
            source = tmp_path / "upload.bin"
            source.write_bytes(data)
            bucket = storage.uri.removeprefix("minio://")
            done = subprocess.run(s3_server.aws("s3", "cp", str(source), f"s3://{bucket}/{key}"),
                                  env=s3_server.tool_env(), capture_output=True, timeout=120)
            assert done.returncode == 0, done.stderr
        else:
            path = tmp_path / "storage" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


@pytest.mark.parametrize("mode", MODES)
def test_objects_other_tools_wrote_are_fetched_once(storage, mode, tmp_path, request):
    s3_server = request.getfixturevalue("s3_server") if storage.kind == "s3" else None
    put_foreign(storage, s3_server, FOREIGN, tmp_path)
    out = tmp_path / "out"
    with cli_for(storage, mode) as (run, service):
        service.set_execution_status("F1", "completed")
        first = orjson.loads(run("F1", "-d", str(out), "--output", "json").stdout)
        assert (first["fetched"], first["skipped"]) == (3, 0)
        second = orjson.loads(run("F1", "-d", str(out), "--output", "json").stdout)
        assert (second["fetched"], second["skipped"]) == (0, 3)
        check = "size+etag" if storage.kind == "s3" else "size+mtime"
        for key, data in FOREIGN.items():
            assert (out / key).read_bytes() == data
            assert orjson.loads((out / (key + ".meta.json")).read_bytes())["change_check"] == check
        # Replaced by the tool with bytes of the same size: that one is fetched again.
        changed = "executions/F1/tool/raw/part-1.csv"
        if storage.kind == "file":
            time.sleep(0.01)  # a later mtime
        put_foreign(storage, s3_server, {changed: FOREIGN[changed].upper()}, tmp_path)
        third = orjson.loads(run("F1", "-d", str(out), "--output", "json").stdout)
        assert (third["fetched"], third["skipped"]) == (1, 2)
        assert (out / changed).read_bytes() == FOREIGN[changed].upper()


@pytest.mark.s3
def test_an_object_and_a_key_below_it_follow_one_rule_in_both_modes(s3_server, tmp_path):
    from conftest import StorageTarget

    storage = StorageTarget("s3", f"minio://{s3_server.new_bucket()}", s3_server.options(), s3_server.env())
    parent, child = "executions/C1/r/s/a", "executions/C1/r/s/a/b"
    trees = {}
    for mode in MODES:
        out = tmp_path / mode
        with cli_for(storage, mode) as (run, service):
            if mode == "direct":
                service.put(parent, b"parent")
                service.put(child, b"child")
                service.put("executions/C1/r/s/other", b"other")
                service.set_execution_status("C1", "completed")
            done = run("C1", "-d", str(out), "--output", "json")
        summary = orjson.loads(done.stdout)
        assert summary["fetched"] == 2 and summary["failed"] == []
        assert [c["key"] for c in summary["conflicts"]] == [child]
        warning = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
        assert len(warning) == 1 and repr(parent) in warning[0] and repr(child) in warning[0]
        assert (out / parent).read_bytes() == b"parent"
        trees[mode] = files_under(out)
        # Every sidecar sits beside its object.
        assert all(name.removesuffix(".meta.json") in trees[mode] for name in trees[mode])
    assert trees["direct"] == trees["api"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_downloaded_files_respect_the_umask(file_storage, mode, umask, tmp_path):
    out = tmp_path / "out"
    with cli_for(file_storage, mode) as (run, service):
        service.put("executions/M1/r/s/one.txt", b"1")
        service.put("executions/M1/r/s/deep/two.txt", b"2")
        service.set_execution_status("M1", "completed")
        run("M1", "-d", str(out), umask=umask)
    modes = {name: stat.S_IMODE(os.stat(out / name).st_mode) for name in files_under(out)}
    assert len(modes) == 4
    assert set(modes.values()) == {0o666 & ~umask}, modes
