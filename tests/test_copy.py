"""``execution copy`` and ``storage copy``: the demo goes filesystem -> S3 (real radosgw)
-> a new filesystem root, and at every step the destination holds the same bytes,
metadata, records and lineage index, and answers ``deps``, ``lineage``, ``diff`` and
``watch`` as the source does."""

from __future__ import annotations

import orjson
import pytest

from copy_support import clean_env, execution_view, one_line_error, run, snapshot
from factflow_storage.registry import create_storage_provider
from retention_support import raw_names, write_execution

DEMO = "demo-1"


def _fs(tmp_path, name: str) -> str:
    return f"file://{tmp_path / name}"


@pytest.fixture
def source(tmp_path) -> str:
    """A filesystem store with the demo, and two executions where ``child`` names objects
    of ``base`` in its lineage."""
    uri = _fs(tmp_path, "source")
    assert run(clean_env({"FACTFLOW_STORAGE_URI": uri}), "demo", "--execution", DEMO).exit_code == 0
    with create_storage_provider(uri, {}) as provider:
        write_execution(provider, "base", 3, big_metadata=True)  # past S3's 2 KiB: a companion record there
        write_execution(provider, "child", 3, lineage_into="base")
    return uri


def _copy(env: dict, *args: str) -> dict:
    result = run(env, "--output", "json", "execution", "copy", *args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return orjson.loads(result.stdout)


def _answers(env: dict) -> list:
    """What the operator tools say about the copied executions."""
    said = []
    for args in (("execution", "deps", "base"), ("execution", "deps", "child"),
                 ("storage", "lineage", "executions/child/route/parse/m0001.txt"),
                 ("storage", "diff", "base", "child"), ("execution", "delete", "base"),  # a dry run
                 ("watch", "--execution", DEMO), ("execution", "list")):
        args = ("storage", *args) if args[0] == "watch" else args
        result = run(env, "--output", "json", *args)
        output = result.stdout
        if "watch" in args:  # event ids, times and replay order are the store's own
            events = [{k: v for k, v in orjson.loads(line).items() if k not in ("id", "created_at")}
                      for line in output.splitlines()]
            output = sorted(events[:-1], key=lambda event: event["key"]) + events[-1:]
        said.append((args, result.exit_code, output))
    return said


def test_demo_goes_fs_to_s3_to_a_new_fs_root_whole(source, tmp_path, s3_server):
    s3_uri = f"minio://{s3_server.new_bucket()}"
    final = _fs(tmp_path, "final")
    s3_env = clean_env({**s3_server.env(), "FACTFLOW_STORAGE_URI": s3_uri})
    from_fs = clean_env({**s3_server.env(), "FACTFLOW_STORAGE_URI": source})
    expected = snapshot(source, {})
    assert len(expected["objects"]) == 16 + 12 and expected["lineage"]

    # The child alone: its parents in ``base`` are missing there, and it says so.
    result = run(from_fs, "execution", "copy", "child", "--to", s3_uri)
    assert result.exit_code == 0, result.stderr
    assert "3 lineage parents in execution base are not in the destination" in result.stderr
    assert "6 objects copied" in result.stdout
    summary = _copy(from_fs, DEMO, "child", "--with-parents", "--to", s3_uri)
    rows = {row["execution_id"]: row for row in summary["executions"]}
    assert [row["execution_id"] for row in summary["executions"]] == ["demo-1", "base", "child"]
    assert (rows[DEMO]["copied"], rows["base"]["copied"], rows["child"]["copied"]) == (16, 6, 0)
    assert rows["child"]["present"] == 6 and summary["warnings"] == []
    assert summary["totals"]["copied_bytes"] == rows[DEMO]["bytes"] + rows["base"]["bytes"]

    on_s3 = snapshot(s3_uri, s3_server.options())
    assert on_s3 == expected
    assert _answers(s3_env) == _answers(from_fs)

    from_s3 = clean_env({**s3_server.env(), "FACTFLOW_STORAGE_URI": s3_uri})
    _copy(from_s3, DEMO, "base", "child", "--to", final)
    assert snapshot(final, {}) == expected
    assert _answers(clean_env({"FACTFLOW_STORAGE_URI": final})) == _answers(from_fs)

    again = run(from_s3, "execution", "copy", DEMO, "base", "child", "--to", final)
    assert again.exit_code == 0 and "0 objects copied" in again.stdout, again.stdout


def test_a_rerun_copies_only_what_is_missing_or_differs(source, tmp_path):
    dest = _fs(tmp_path, "dest")
    env = clean_env({"FACTFLOW_STORAGE_URI": source})
    _copy(env, DEMO, "--to", dest)
    key = f"executions/{DEMO}/markdown_processor/html_to_markdown/msg-0002.md"
    with create_storage_provider(dest, {}) as provider:
        provider.delete(f"executions/{DEMO}/sitemap_scraper/sitemap/sitemap.json")
        provider.write(key, b"changed at the destination", provider.metadata(key))
    summary = _copy(env, DEMO, "--to", dest)
    assert (summary["totals"]["copied"], summary["totals"]["present"]) == (2, 14)
    assert execution_view(dest, DEMO) == execution_view(source, DEMO)
    assert "0 objects copied" in run(env, "execution", "copy", DEMO, "--to", dest).stdout


def test_dry_run_says_what_would_be_copied_and_writes_nothing(source, tmp_path):
    dest = tmp_path / "dest"
    env = clean_env({"FACTFLOW_STORAGE_URI": source})
    result = run(env, "execution", "copy", DEMO, "base", "--to", f"file://{dest}", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "dry run: would copy 22 objects" in result.stdout
    summary = _copy(env, DEMO, "--to", f"file://{dest}", "--dry-run")
    assert summary["dry_run"] is True and summary["totals"]["copied"] == 16
    assert not dest.exists()


def test_an_id_held_for_another_run_is_refused_unless_forced(source, tmp_path):
    dest = _fs(tmp_path, "dest")
    dest_env = clean_env({"FACTFLOW_STORAGE_URI": dest})
    assert run(dest_env, "demo", "--execution", DEMO).exit_code == 0  # another run of the same id
    with create_storage_provider(dest, {}) as provider:
        provider.write(f"executions/{DEMO}/extra/stage/only-here.txt", b"not in the source")
    before = snapshot(dest, {})
    env = clean_env({"FACTFLOW_STORAGE_URI": source})
    result = run(env, "execution", "copy", DEMO, "--to", dest)
    one_line_error(result, f"execution '{DEMO}' already exists in {dest} with other content")
    assert snapshot(dest, {}) == before
    _copy(env, DEMO, "--force", "--to", dest)
    assert execution_view(dest, DEMO) == execution_view(source, DEMO)


def test_bad_input_is_one_line_and_writes_nothing(source, tmp_path):
    env = clean_env({"FACTFLOW_STORAGE_URI": source})
    dest = tmp_path / "dest"
    one_line_error(run(env, "execution", "copy", "nope", "--to", f"file://{dest}"), "no execution 'nope'")
    one_line_error(run(env, "execution", "copy", DEMO, "nope", "--to", f"file://{dest}"), "no execution 'nope'")
    assert not dest.exists()
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    one_line_error(run(env, "execution", "copy", DEMO, "--to", f"file://{blocker}/store"), "cannot be created")
    one_line_error(run(env, "execution", "copy", DEMO, "--to", source), "is the source itself")
    api = clean_env({"FACTFLOW_STORAGE_URI": source, "FACTFLOW_API_URL": "http://127.0.0.1:9"})
    one_line_error(run(api, "execution", "copy", DEMO, "--to", f"file://{dest}"), "not a URI")
    one_line_error(run(api, "storage", "copy", "executions/", "--to", f"file://{dest}"), "not a URI")
    assert not dest.exists()


def test_keys_the_destination_cannot_hold_are_refused_before_any_write(tmp_path, s3_server):
    s3_uri = f"minio://{s3_server.new_bucket()}"
    with create_storage_provider(s3_uri, s3_server.options()) as provider:
        provider.write("executions/x/r/s/a", b"an object")
        provider.write("executions/x/r/s/a/b", b"an object below a prefix of that name")
        provider.write_execution("x", {"execution_id": "x", "status": "completed"})
    env = clean_env({**s3_server.env(), "FACTFLOW_STORAGE_URI": s3_uri})
    dest = tmp_path / "dest"
    one_line_error(run(env, "execution", "copy", "x", "--to", f"file://{dest}"), "cannot hold both")
    assert not dest.exists()

    long_key = "executions/y/r/s/" + "/".join(["k" * 230] * 4)
    with create_storage_provider(_fs(tmp_path, "long"), {}) as provider:
        provider.write(long_key, b"fits a filesystem, not S3 under a prefix")
    env = clean_env({**s3_server.env(), "FACTFLOW_STORAGE_URI": _fs(tmp_path, "long")})
    bucket = s3_server.new_bucket()
    one_line_error(run(env, "execution", "copy", "y", "--to", f"minio://{bucket}/{'p' * 200}"),
                   "longer than 1024 bytes")
    assert snapshot(f"minio://{bucket}", s3_server.options(), "") == {"objects": {}, "records": {}, "lineage": {}}


def test_storage_copy_copies_a_prefix_with_its_metadata(tmp_path):
    source, dest = _fs(tmp_path, "source"), _fs(tmp_path, "dest")
    with create_storage_provider(source, {}) as provider:
        for n in range(5):
            provider.write(f"reference/tables/t{n}.csv", f"a,b\n{n},{n}\n".encode(), {"owner": "ops", "n": n})
        provider.write("other/skip.txt", b"outside the prefix")
    env = clean_env({"FACTFLOW_STORAGE_URI": source})
    result = run(env, "--output", "json", "storage", "copy", "reference/", "--to", dest)
    assert result.exit_code == 0, result.stderr
    summary = orjson.loads(result.stdout)
    assert summary["prefixes"][0]["copied"] == 5 and summary["totals"]["copied"] == 5
    assert snapshot(dest, {}, "") == snapshot(source, {}, "reference/")
    assert "0 objects copied" in run(env, "storage", "copy", "reference/", "--to", dest).stdout


def test_a_copy_killed_mid_way_leaves_no_record_and_a_rerun_finishes_it(tmp_path, s3_server):
    import os
    import signal
    import subprocess
    import sys

    source = _fs(tmp_path, "source")
    with create_storage_provider(source, {}) as provider:
        write_execution(provider, "big", 150)  # 300 objects
    s3_uri = f"minio://{s3_server.new_bucket()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    env.update(s3_server.env(), FACTFLOW_STORAGE_URI=source)
    proc = subprocess.Popen([sys.executable, "-m", "factflow_storage", "-v", "execution", "copy", "big",
                             "--to", s3_uri, "--jobs", "2"], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    copied = 0
    assert proc.stderr is not None
    for line in proc.stderr:  # the deadline is the test run's own; each line comes in milliseconds
        copied += line.startswith(b"factflow: copied ")
        if copied == 10:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert copied == 10 and proc.returncode == -signal.SIGKILL

    objects, record = execution_view(s3_uri, "big", s3_server.options())
    source_objects, source_record = execution_view(source, "big")
    assert record is None  # never looks complete
    assert 10 <= len(objects) < 300
    assert all(source_objects[key] == value for key, value in objects.items())  # each one whole
    s3_env = clean_env({**s3_server.env(), "FACTFLOW_STORAGE_URI": s3_uri})
    assert "big" not in run(s3_env, "execution", "list").stdout

    summary = _copy(clean_env({**s3_server.env(), "FACTFLOW_STORAGE_URI": source}), "big", "--to", s3_uri)
    assert summary["totals"]["copied"] == 300 - len(objects)
    assert summary["totals"]["present"] == len(objects)
    assert execution_view(s3_uri, "big", s3_server.options()) == (source_objects, source_record)
    again = run(clean_env({**s3_server.env(), "FACTFLOW_STORAGE_URI": source}), "execution", "copy", "big",
                "--to", s3_uri)
    assert "0 objects copied" in again.stdout


def test_progress_shows_on_a_terminal(source, tmp_path):
    from cli_support import on_a_terminal

    code, seen = on_a_terminal({"FACTFLOW_STORAGE_URI": source}, "execution", "copy", DEMO,
                               "--to", _fs(tmp_path, "dest"))
    assert code == 0, seen
    assert b"copying" in seen and b"16/16 objects" in seen and b"16 objects copied" in seen


def test_over_api_the_server_copies_only_to_destinations_its_operator_named(source, tmp_path, monkeypatch):
    from server_fixture import running_server

    from factflow_storage.service import StorageService

    dest = tmp_path / "laptop"
    for name in [n for n in __import__("os").environ if n.startswith("FACTFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray factflow.toml
    with create_storage_provider(source, {}) as provider, running_server(StorageService(provider)) as url:
        api = clean_env({"FACTFLOW_API_URL": url, "FACTFLOW_STORAGE_URI": f"file://{tmp_path / 'never'}"})
        one_line_error(run(api, "execution", "copy", DEMO, "--to", "laptop"), "this server has no copy destinations")
        monkeypatch.setenv("FACTFLOW_COPY_DESTINATIONS", f"laptop=file://{dest}, archive=file://{tmp_path / 'a'}")
        one_line_error(run(api, "execution", "copy", DEMO, "--to", f"file://{dest}"), "not a URI")
        one_line_error(run(api, "execution", "copy", DEMO, "--to", "elsewhere"),
                       "no copy destination named 'elsewhere' on this server (it has: archive, laptop)")
        one_line_error(run(api, "execution", "copy", "nope", "--to", "laptop"), "no execution 'nope'")
        assert not dest.exists()

        result = run(api, "execution", "copy", "child", "--to", "laptop")
        assert result.exit_code == 0, result.stderr
        assert "lineage parents in execution base are not in the destination" in result.stderr
        assert result.stdout.endswith("6 objects copied (39 B) to laptop; 0 already there\n"), result.stdout
        summary = orjson.loads(run(api, "-o", "json", "execution", "copy", DEMO, "child", "--with-parents",
                                   "--to", "laptop").stdout)
        assert summary["destination"] == "laptop" and summary["totals"]["copied"] == 22
        assert snapshot(f"file://{dest}", {}) == snapshot(source, {})
        assert "0 objects copied" in run(api, "execution", "copy", DEMO, "--to", "laptop").stdout
        prefix = run(api, "-o", "json", "storage", "copy", "executions/base/", "--to", "archive", "--dry-run")
        assert orjson.loads(prefix.stdout)["totals"]["copied"] == 6
        assert not (tmp_path / "a").exists()


def test_a_rerun_into_s3_sees_an_object_rewritten_since_the_copy(source, s3_server):
    s3_uri = f"minio://{s3_server.new_bucket()}"
    env = clean_env({**s3_server.env(), "FACTFLOW_STORAGE_URI": source})
    _copy(env, DEMO, "--to", s3_uri)
    key = f"executions/{DEMO}/markdown_processor/chunker/msg-0003.json"
    with create_storage_provider(s3_uri, s3_server.options()) as provider:
        provider.write(key, b'{"rewritten": true}', provider.metadata(key))
    summary = _copy(env, DEMO, "--to", s3_uri)
    assert (summary["totals"]["copied"], summary["totals"]["present"]) == (1, 15)
    assert execution_view(s3_uri, DEMO, s3_server.options()) == execution_view(source, DEMO)
    assert _copy(env, DEMO, "--to", s3_uri)["totals"]["copied"] == 0

    deleted = run(clean_env({**s3_server.env(), "FACTFLOW_STORAGE_URI": s3_uri}), "execution", "delete", DEMO, "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    with create_storage_provider(s3_uri, s3_server.options()) as provider:
        # The copy manifest went too; what stays is the deletion record and the marker that
        # says the store's executions index is complete.
        assert raw_names(provider) == {f"_factflow/deletions/{DEMO}.json", "_factflow/execution-index.json"}


def test_a_running_execution_is_copied_as_it_stands_with_a_warning(tmp_path):
    source, dest = _fs(tmp_path, "source"), _fs(tmp_path, "dest")
    with create_storage_provider(source, {}) as provider:
        write_execution(provider, "live", 2, status="running")
    env = clean_env({"FACTFLOW_STORAGE_URI": source})
    result = run(env, "execution", "copy", "live", "--to", dest)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ("warning: execution live has not finished: what it holds now is copied, with its "
                             "record as it is; run the copy again once it finishes\n")
    with create_storage_provider(source, {}) as provider:
        provider.write("executions/live/route/fetch/late.json", b"{}")
        provider.write_execution("live", {**provider.read_execution("live"), "status": "completed"})
    summary = _copy(env, "live", "--to", dest)
    assert (summary["totals"]["copied"], summary["executions"][0]["record"]) == (1, "copied")
    assert execution_view(dest, "live") == execution_view(source, "live")
