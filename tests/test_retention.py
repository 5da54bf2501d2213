"""Retention on every provider (real radosgw for S3): ``execution delete``, ``deps``,
``storage prune``, deletion records, lineage safety, kill -9 mid-delete, ``--api`` parity,
and ``storage delete`` of a prefix or a missing key."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap

import orjson
import pytest
from click.testing import CliRunner

import factflow_storage
from factflow_storage import executions, metadata
from factflow_storage.cli.main import cli
from factflow_storage.service import StorageService
from retention_support import raw_dirs, raw_names, write_execution
from server_fixture import http_request, running_server

FROZEN = "2026-06-01T00:00:00.000Z"


def cli_env(storage, **extra) -> dict:
    env = {name: None for name in os.environ if name.startswith("FACTFLOW_")}
    return {**env, **storage.env, "FACTFLOW_STORAGE_URI": storage.uri, **extra}


def run(storage, *args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env or cli_env(storage), catch_exceptions=False)


def ok_json(storage, *args: str, env: dict | None = None):
    result = run(storage, *args, "--output", "json", env=env)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return orjson.loads(result.stdout)


def one_line_error(result, *says: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for text in says:
        assert text in result.stderr


def test_dry_runs_change_nothing(storage, provider):
    write_execution(provider, "A", big_metadata=True)
    write_execution(provider, "B", lineage_into="A")
    before = raw_names(provider)
    plan = ok_json(storage, "execution", "delete", "A")
    assert plan["dry_run"] is True
    [row] = plan["executions"]
    assert (row["execution_id"], row["status"], row["action"], row["objects"]) == ("A", "completed",
                                                                                    "blocked by lineage", 6)
    assert row["bytes"] == sum(info.size for info in provider.list("executions/A/"))
    assert [ref["execution_id"] for ref in row["dependants"]] == ["B", "B", "B"]
    assert {ref["parent"] for ref in row["dependants"]} == {f"executions/A/route/fetch/m{n:04d}.json" for n in range(3)}
    table = run(storage, "execution", "delete", "A", "B")
    assert table.exit_code == 0 and table.stdout.startswith("dry run: nothing deleted")
    pruned = ok_json(storage, "storage", "prune", "--older-than", "0s")
    assert pruned["dry_run"] and {r["execution_id"] for r in pruned["executions"]} == {"A", "B"}
    assert raw_names(provider) == before


def test_delete_removes_every_trace(storage, provider):
    write_execution(provider, "B")
    before, dirs_before = raw_names(provider), raw_dirs(provider)
    # Still running: a finished execution's journal markers are already gone, and this
    # test wants every kind of trace present when the delete starts.
    write_execution(provider, "A", count=4, big_metadata=True, status="running")
    job = "0123456789abcdef0123456789abcdef"
    provider.put_record(f"jobs/{job}.json", orjson.dumps({"job_id": job, "status": "ready", "execution_id": "A"}))
    provider.put_record(f"jobs/{job}.zip", b"PK")
    during = raw_names(provider) - before
    if storage.kind == "s3":  # the traces S3 keeps beside the objects are really there
        assert any(name.startswith("_factflow/metadata/") for name in during)
        assert any(name.startswith("_factflow/journal/A/") for name in during)
    result = ok_json(storage, "execution", "delete", "A", "--yes", "--force")
    [row] = result["executions"]
    assert row["deleted"]["objects"] == 8 and row["deleted"]["archive_jobs"] == 1
    assert raw_names(provider) - before == {"_factflow/deletions/A.json"}
    assert before <= raw_names(provider)
    if storage.kind == "file":
        assert raw_dirs(provider) - dirs_before == {"_factflow/deletions"}
    [record] = ok_json(storage, "execution", "list", "--deleted")["deletions"]
    assert record["execution_id"] == "A" and record["state"] == "deleted"
    assert record["deleted"]["objects"] == 8 and record["summary"]["objects"] == 8 and record["requested_by"]
    one_line_error(run(storage, "execution", "show", "A"), "no execution 'A'")
    again = ok_json(storage, "execution", "delete", "A", "--yes")
    assert again["executions"][0]["action"] == "already deleted"
    assert raw_names(provider) - before == {"_factflow/deletions/A.json"}


def test_lineage_refuses_force_overrides_and_deps_show_both_ways(storage, provider):
    write_execution(provider, "A")
    b_keys = write_execution(provider, "B", lineage_into="A")
    before = raw_names(provider)
    refused = run(storage, "execution", "delete", "A", "--yes")
    one_line_error(refused, "B (executions/B/route/parse/m0000.txt)", "--force", "nothing deleted")
    assert raw_names(provider) == before
    deps = ok_json(storage, "execution", "deps", "A")
    assert deps["dependants"][0] == {"execution_id": "B", "key": "executions/B/route/parse/m0000.txt",
                                     "parent": "executions/A/route/fetch/m0000.json"}
    assert deps["depends_on"] == []
    assert len(ok_json(storage, "execution", "deps", "B")["depends_on"]) == 3
    forced = ok_json(storage, "execution", "delete", "A", "--yes", "--force")
    assert forced["executions"][0]["deleted"]["objects"] == 6
    assert [info.key for info in provider.list("executions/")] == sorted(b_keys)
    assert ok_json(storage, "execution", "deps", "B")["depends_on"] == []  # its index entries went with A


def test_a_reference_the_child_no_longer_makes_does_not_block(storage, provider):
    write_execution(provider, "A", count=1)
    write_execution(provider, "B", count=1, lineage_into="A")
    provider.write("executions/B/route/parse/m0000.txt", b"rewritten", {"lineage": []})
    assert ok_json(storage, "execution", "delete", "A", "--yes")["executions"][0]["deleted"]["objects"] == 2


def test_deleting_executions_together_ignores_references_among_them(storage, provider):
    write_execution(provider, "A", count=1)
    write_execution(provider, "B", count=1, lineage_into="A")
    result = ok_json(storage, "execution", "delete", "A", "B", "--yes")
    assert [row["deleted"]["objects"] for row in result["executions"]] == [2, 2]
    assert list(provider.list("")) == []


def test_a_running_execution_is_refused_unless_forced(storage, provider):
    write_execution(provider, "R", count=1, status="running")
    one_line_error(run(storage, "execution", "delete", "R", "--yes"), "R is running")
    assert ok_json(storage, "execution", "delete", "R", "--yes", "--force")["executions"][0]["deleted"]["objects"] == 2


def _at(monkeypatch, moment: str) -> None:
    monkeypatch.setattr(metadata, "now_rfc3339", lambda: moment)


def test_prune_by_age_status_and_keep_with_a_fixed_clock(storage, provider, monkeypatch):
    plan = [("old-failed", "2026-01-01", "failed", None), ("old-done", "2026-01-02", "completed", None),
            ("old-needed", "2026-01-03", "cancelled", None), ("new-failed", "2026-05-30", "failed", None),
            ("keeper", "2026-05-31", "completed", "old-needed"), ("stuck", "2026-01-01", "running", None)]
    for execution_id, day, status, lineage_into in plan:
        _at(monkeypatch, f"{day}T00:00:00.000Z")
        write_execution(provider, execution_id, count=1, status=status, lineage_into=lineage_into)
    _at(monkeypatch, FROZEN)
    dry = ok_json(storage, "storage", "prune", "--older-than", "90d")
    assert [r["execution_id"] for r in dry["executions"]] == ["old-done", "old-failed"]
    assert [(s["execution_id"], s["dependants"][0]["execution_id"]) for s in dry["skipped"]] == [("old-needed", "keeper")]
    assert "needed by kept executions: keeper" in dry["skipped"][0]["reason"]
    only_failed = ok_json(storage, "storage", "prune", "--older-than", "90d", "--status", "failed")
    assert [r["execution_id"] for r in only_failed["executions"]] == ["old-failed"]
    kept = ok_json(storage, "storage", "prune", "--older-than", "1d", "--keep", "4")
    assert [r["execution_id"] for r in kept["executions"]] == ["old-failed"]
    assert run(storage, "storage", "prune", "--older-than", "90d", "--status", "running").exit_code == 1
    table = run(storage, "storage", "prune", "--older-than", "90d")
    assert "skipped old-needed: needed by kept executions: keeper" in table.stdout
    done = ok_json(storage, "storage", "prune", "--older-than", "90d", "--yes")
    assert [r["deleted"]["objects"] for r in done["executions"]] == [2, 2]
    left = [r["execution_id"] for r in executions.list_executions(provider)]
    assert sorted(left) == ["keeper", "new-failed", "old-needed", "stuck"]
    assert {info.key.split("/")[1] for info in provider.list("executions/")} == set(left)


CHILD = textwrap.dedent("""
    import os, signal, sys
    from factflow_storage import create_storage_provider
    from factflow_storage.retention import delete

    delete.CHUNK = 5  # several chunks from a small execution
    point, execution_id = sys.argv[1], sys.argv[2]
    provider = create_storage_provider(os.environ["FACTFLOW_STORAGE_URI"])
    calls = []

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    many, records = provider.delete_many, provider.delete_records

    def delete_many(keys):
        calls.append(keys)
        if point == "objects" and len(calls) == 3:
            die()
        many(keys)

    def delete_records(names):
        if point == "record" and any(name.startswith("executions/") for name in names):
            die()
        records(names)

    provider.delete_many, provider.delete_records = delete_many, delete_records
    delete.delete_executions(provider, [execution_id], confirm=True)
""")


@pytest.mark.parametrize("point", ["objects", "record"])
def test_kill_9_mid_delete_leaves_it_deleting_and_a_rerun_finishes(storage, provider, tmp_path, point):
    write_execution(provider, "keep", count=2)
    before = raw_names(provider)
    write_execution(provider, "X", count=10)
    env = storage.cli_env()
    package_root = os.path.dirname(os.path.dirname(factflow_storage.__file__))  # the code under test
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    child = subprocess.run([sys.executable, "-c", CHILD, point, "X"], check=False, env=env, capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    left = [info.key for info in provider.list("executions/X/")]
    assert len(left) == (10 if point == "objects" else 0)
    listed = {r["execution_id"]: r["status"] for r in ok_json(storage, "execution", "list")["executions"]}
    assert listed == {"keep": "completed", "X": "deleting"}
    one_line_error(run(storage, "storage", "watch", "--execution", "X", "--timeout", "5s"), "being deleted")
    one_line_error(run(storage, "storage", "download", "X", "-d", str(tmp_path / "out")), "being deleted")
    one_line_error(run(storage, "execution", "finish", "X"), "being deleted")
    [pending] = ok_json(storage, "execution", "list", "--deleted")["deletions"]
    assert pending["state"] == "deleting" and pending["summary"]["objects"] == 20
    done = ok_json(storage, "execution", "delete", "X", "--yes")  # no --force needed to finish
    assert done["executions"][0]["action"] == "resume"
    assert raw_names(provider) - before == {"_factflow/deletions/X.json"} and before <= raw_names(provider)
    [record] = ok_json(storage, "execution", "list", "--deleted")["deletions"]
    assert record["state"] == "deleted" and record["deleted"]["objects"] == 20 and record["resumed_at"]


def test_storage_delete_of_a_prefix_or_a_missing_key(storage, provider):
    write_execution(provider, "A", count=1)
    before = raw_names(provider)
    refused = run(storage, "storage", "delete", "executions/A/route")
    one_line_error(refused, "is a prefix", "factflow execution delete")
    assert raw_names(provider) == before
    missing = run(storage, "storage", "delete", "nothing/here")
    assert (missing.exit_code, missing.stdout, missing.stderr) == (0, "", "no object nothing/here: nothing deleted\n")
    assert ok_json(storage, "storage", "delete", "nothing/here") == {"key": "nothing/here", "deleted": False}
    assert ok_json(storage, "storage", "delete", "executions/A/route/fetch/m0000.json")["deleted"] is True


def test_api_parity_and_http_answers(storage, provider, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _at(monkeypatch, FROZEN)
    for name in ("A", "X", "Y"):
        write_execution(provider, name, count=2)
    write_execution(provider, "B", count=2, lineage_into="A")
    never = str(tmp_path / "never")
    with running_server(StorageService(provider)) as url:
        api = cli_env(storage, FACTFLOW_STORAGE_URI=f"file://{never}", FACTFLOW_API_URL=url)
        for args in (["execution", "delete", "A"], ["execution", "delete", "A", "B", "-o", "json"],
                     ["execution", "delete", "A", "--yes"], ["execution", "delete", "nope"],
                     ["execution", "deps", "A", "-o", "json"], ["execution", "deps", "B"],
                     ["storage", "prune", "--older-than", "0s"], ["storage", "prune", "--older-than", "1h", "-o", "json"],
                     ["storage", "delete", "executions/A"], ["storage", "delete", "missing/key"],
                     ["execution", "list", "--deleted"]):
            direct, remote = run(storage, *args), run(storage, *args, env=api)
            assert (remote.exit_code, remote.stdout, remote.stderr) == (direct.exit_code, direct.stdout,
                                                                       direct.stderr), args
        direct = run(storage, "execution", "delete", "X", "--yes", "-o", "json")
        remote = run(storage, "execution", "delete", "Y", "--yes", "-o", "json", env=api)
        assert remote.exit_code == direct.exit_code == 0
        assert remote.stdout.replace('"Y"', '"X"') == direct.stdout
        assert run(storage, "execution", "list", "--deleted", env=api).stdout == \
            run(storage, "execution", "list", "--deleted").stdout
        assert not os.path.exists(never)
        plan = http_request(url, "DELETE", "/api/v1/executions/A")
        assert plan.status == 200 and plan.json()["dry_run"] is True
        refused = http_request(url, "DELETE", "/api/v1/executions/A?confirm=true")
        assert refused.status == 409 and set(refused.json()) == {"detail", "error_code", "timestamp"}
        bad = http_request(url, "POST", "/api/v1/executions/prune", body=b'{"older_than": "soon"}',
                           headers={"Content-Type": "application/json"})
        assert bad.status == 400 and bad.json()["error_code"] == "bad_request"
        assert http_request(url, "GET", "/api/v1/executions/nope/deps").status == 404


def test_totals_count_only_what_would_be_deleted_in_both_modes(storage, provider, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _at(monkeypatch, FROZEN)
    write_execution(provider, "A", count=8)
    write_execution(provider, "B", count=1, lineage_into="A")
    executions.set_status(provider, "C", "running")
    provider.write("executions/C/route/fetch/only.txt", b"x", {})
    executions.set_status(provider, "C", "failed")
    a_bytes = sum(info.size for info in provider.list("executions/A/"))
    b_bytes = sum(info.size for info in provider.list("executions/B/"))
    expected = {
        ("execution", "delete", "A"): "total: 0 executions, 0 objects, 0 bytes",
        ("execution", "delete", "A", "C"): "total: 1 execution, 1 object, 1 byte",
        ("execution", "delete", "A", "--force"): f"total: 1 execution, 16 objects, {a_bytes} bytes",
        ("execution", "delete", "A", "B"): f"total: 2 executions, 18 objects, {a_bytes + b_bytes} bytes",
        ("storage", "prune", "--older-than", "0s", "--status", "failed"): "total: 1 execution, 1 object, 1 byte",
    }
    with running_server(StorageService(provider)) as url:
        api = cli_env(storage, FACTFLOW_STORAGE_URI=f"file://{tmp_path / 'never'}", FACTFLOW_API_URL=url)
        for args, total in expected.items():
            direct, remote = run(storage, *args), run(storage, *args, env=api)
            assert (direct.exit_code, direct.stderr) == (0, ""), args
            assert direct.stdout.splitlines()[-1] == total, args
            assert (remote.exit_code, remote.stdout, remote.stderr) == (0, direct.stdout, ""), args
            numbers = dict(zip(("executions", "objects", "bytes"),
                               (int(word) for word in total.split() if word.rstrip(",").isdigit()), strict=True))
            for env in (None, api):
                assert ok_json(storage, *args, env=env)["totals"] == numbers, args
        blocked = run(storage, "execution", "delete", "A")
        assert "blocked by lineage" in blocked.stdout and "would break: B " in blocked.stdout
        done = run(storage, "execution", "delete", "C", "--yes", env=api)
    assert done.stdout == ("deleted execution C: 1 object (1 byte), 0 journal markers, 0 archive jobs\n"
                           "total: 1 execution, 1 object, 1 byte\n")


def test_delete_many_removes_exactly_the_keys_given_in_requests_of_1000(storage, provider):
    kept = write_execution(provider, "K", count=1)
    gone = write_execution(provider, "G", count=2, big_metadata=True)
    before = raw_names(provider)
    missing = [f"executions/G/route/none/m{n:05d}" for n in range(2496)]
    trace = io.StringIO()
    if storage.kind == "s3":
        provider._client.trace_on(trace)
    provider.delete_many(gone + missing)
    if storage.kind == "s3":
        provider._client.trace_off()
        deletes = [line for line in trace.getvalue().splitlines() if line.startswith("POST ") and "?delete" in line]
        assert len(deletes) == 4  # the companion record, then 2,500 names: 1,000 + 1,000 + 500
        assert not any(name.startswith("_factflow/metadata/") for name in raw_names(provider))
    assert [info.key for info in provider.list("executions/")] == sorted(kept)
    assert not any(name.startswith("executions/G/") for name in raw_names(provider))
    assert raw_names(provider) < before
