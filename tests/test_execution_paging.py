"""Executions listed a page at a time, newest first, on every provider: the CLI's
``execution list --limit/--cursor`` and ``GET /api/v1/executions?limit=&cursor=`` agree,
a page and its filters read no execution record (listings only), writers keep the index
through start, finish and deletion, and a store written before the index is listed by a
scan until ``fsck --repair`` builds it."""

from __future__ import annotations

import base64
import os
from urllib.parse import urlencode

import orjson
import pytest
from click.testing import CliRunner

from factflow_storage import executions
from factflow_storage.cli.main import cli
from factflow_storage.service import StorageService
from retention_support import raw_names
from server_fixture import http_request, running_server


def cli_env(storage) -> dict:
    env = {name: None for name in os.environ if name.startswith("FACTFLOW_")}
    return {**env, **storage.env, "FACTFLOW_STORAGE_URI": storage.uri}


def run(storage, *args: str):
    return CliRunner().invoke(cli, list(args), env=cli_env(storage), catch_exceptions=False)


def ok_json(storage, *args: str):
    result = run(storage, *args, "--output", "json")
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return orjson.loads(result.stdout)


def at(minute: int) -> str:
    return f"2026-03-01T10:{minute:02d}:00.000Z"


def record(execution_id: str, minute: int, status: str = "completed", count: int = 2) -> dict:
    done = status != "running"
    return {"execution_id": execution_id, "status": status, "started_at": at(minute),
            "finished_at": at(minute + 1) if done else None, "object_count": count if done else None}


# Newest first: e06 (running), e05, e04, e03, then e01 and e02 (same start: ties go by
# id), e00. Failed: e00, e03; completed: e01, e02, e04, e05.
NEWEST_FIRST = ["e06", "e05", "e04", "e03", "e01", "e02", "e00"]


def season(provider, count: int = 7) -> None:
    """Executions started a minute apart, e01 and e02 at the same minute, written as
    writers write them (the last one still running)."""
    for n in range(count):
        status = "running" if n == count - 1 else ("failed" if n % 3 == 0 else "completed")
        provider.write_execution(f"e{n:02d}", record(f"e{n:02d}", 1 if n == 2 else n, status))


def record_reads(monkeypatch, provider) -> list[str]:
    """Names of execution records read through ``provider`` from now on."""
    reads: list[str] = []
    original = provider.open_record

    def counting(name):
        if name.startswith("executions/"):
            reads.append(name)
        return original(name)

    monkeypatch.setattr(provider, "open_record", counting)
    return reads


def pages_cli(storage, limit: int, *extra: str) -> list[dict]:
    pages, cursor = [], None
    while True:
        page = ok_json(storage, "execution", "list", "--limit", str(limit), *extra,
                       *(["--cursor", cursor] if cursor else []))
        pages.append(page)
        cursor = page["next_cursor"]
        if not cursor:
            return pages


def get(url: str, **params) -> tuple[int, dict]:
    reply = http_request(url, "GET", "/api/v1/executions" + ("?" + urlencode(params) if params else ""))
    return reply.status, orjson.loads(reply.body)


def ids(page: dict) -> list[str]:
    return [row["execution_id"] for row in page["executions"]]


def test_pages_are_newest_first_and_read_no_record(storage, provider, monkeypatch):
    season(provider)
    whole = ok_json(storage, "execution", "list")
    assert ids(whole) == NEWEST_FIRST
    assert whole["executions"][0] == {"execution_id": "e06", "status": "running", "started_at": at(6),
                                      "finished_at": None, "object_count": None}
    assert whole["executions"][-1] == {"execution_id": "e00", "status": "failed", "started_at": at(0),
                                       "finished_at": at(1), "object_count": 2}
    pages = pages_cli(storage, 3)
    assert [len(page["executions"]) for page in pages] == [3, 3, 1]
    assert sum((page["executions"] for page in pages), []) == whole["executions"]
    cursor = pages[0]["next_cursor"]
    assert base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))  # opaque, as the object list's
    service = StorageService(provider)
    reads = record_reads(monkeypatch, provider)
    with running_server(service) as url:
        status, first = get(url, limit=3)
        assert status == 200 and first == pages[0]
        status, second = get(url, limit=3, cursor=first["next_cursor"])
        assert status == 200 and second == pages[1]
        status, everything = get(url)
        assert status == 200 and everything == {**whole, "next_cursor": None}
    assert reads == []  # listings only: no execution record was read for any page
    table = run(storage, "execution", "list", "--limit", "2")
    assert table.exit_code == 0 and table.stdout.splitlines()[1].split()[:2] == ["e06", "running"]
    assert f"--cursor {ok_json(storage, 'execution', 'list', '--limit', '2')['next_cursor']}" in table.stderr


def test_status_and_time_filters_need_listings_only(storage, provider, monkeypatch):
    season(provider)
    reads = record_reads(monkeypatch, provider)
    assert ids(ok_json(storage, "execution", "list", "--status", "failed")) == ["e03", "e00"]
    assert ids(ok_json(storage, "execution", "list", "--status", "failed,running")) == ["e06", "e03", "e00"]
    assert ids(ok_json(storage, "execution", "list", "--since", at(3), "--until", at(5))) == ["e04", "e03"]
    pages = pages_cli(storage, 1, "--status", "completed", "--since", at(1))
    assert [ids(page) for page in pages] == [["e05"], ["e04"], ["e01"], ["e02"]]
    with running_server(StorageService(provider)) as url:
        status, page = get(url, status="completed", since=at(2), limit=5)
        assert status == 200 and ids(page) == ["e05", "e04"] and page["next_cursor"] is None
        status, page = get(url, until=at(1))
        assert status == 200 and ids(page) == ["e00"]
        for bad in ({"limit": "0"}, {"limit": "1001"}, {"cursor": "bm90LWEtcGxhY2U"}, {"cursor": "**"},
                    {"status": "done"}, {"since": "yesterday"}):
            status, error = get(url, **bad)
            assert status == 400 and set(error) == {"detail", "error_code", "timestamp"}, (bad, error)
    assert reads == []
    refused = run(storage, "execution", "list", "--status", "done")
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1 and "unknown status 'done'" in refused.stderr
    assert run(storage, "execution", "list", "--all", "--limit", "2").exit_code == 2


def test_an_execution_started_or_finished_during_paging(storage, provider):
    season(provider)
    first = ok_json(storage, "execution", "list", "--limit", "3")
    assert ids(first) == ["e06", "e05", "e04"]
    assert ok_json(storage, "execution", "start", "fresh")["status"] == "running"  # newer than every other
    executions.set_status(provider, "e02", "completed")  # re-finished: its entry changes under the cursor
    rest = []
    cursor = first["next_cursor"]
    while cursor:
        page = ok_json(storage, "execution", "list", "--limit", "3", "--cursor", cursor)
        rest += ids(page)
        cursor = page["next_cursor"]
    assert rest == ["e03", "e01", "e02", "e00"]  # nothing twice, nothing skipped
    again = ok_json(storage, "execution", "list", "--limit", "3")
    assert ids(again) == ["fresh", "e06", "e05"]
    assert len([name for name in raw_names(provider) if "_e02/" in name]) == 1  # one entry once a write is done


def test_a_killed_writer_leaves_two_entries_the_list_and_fsck_settle(storage, provider):
    season(provider, 3)
    # A writer killed after putting the new entry, before writing the record.
    ahead = {**record("e00", 0), "status": "cancelled"}
    provider.put_record(executions.index.entry_name("e00", ahead), b"")
    rows = {row["execution_id"]: row["status"] for row in ok_json(storage, "execution", "list")["executions"]}
    assert rows == {"e02": "running", "e01": "completed", "e00": "failed"}
    report = ok_json(storage, "storage", "fsck", "--repair", "--grace", "0s")
    assert report["found"] == {"stale_index_entry": 1} and report["unrepaired"] == 0
    assert not any("cancelled" in name for name in raw_names(provider))


def test_deletion_takes_the_entry_with_the_record(storage, provider):
    season(provider, 3)
    assert run(storage, "execution", "delete", "e01", "--yes").exit_code == 0
    assert ids(ok_json(storage, "execution", "list")) == ["e02", "e00"]
    assert not any("_e01/" in name for name in raw_names(provider))


def test_a_store_written_before_the_index_is_scanned_until_fsck_builds_it(storage, provider, monkeypatch):
    season(provider)
    expected = NEWEST_FIRST
    # The same store as a version without the index left it: records only.
    for name in list(provider.list_records("execution-index")):
        provider.delete_records([name])
    assert not any("execution-index" in name for name in raw_names(provider))
    provider.__dict__.pop("_execution_index_ready", None)
    scanned = [ok_json(storage, "execution", "list"), *pages_cli(storage, 4, "--status", "completed,running")]
    assert ids(scanned[0]) == expected
    assert [ids(page) for page in scanned[1:]] == [["e06", "e05", "e04", "e01"], ["e02"]]
    ok_json(storage, "execution", "start", "later")  # a writer of a store with records: no marker yet
    checked = run(storage, "storage", "fsck", "--output", "json")
    assert checked.exit_code == 1
    assert orjson.loads(checked.stdout)["found"] == {"index_not_built": 1, "unindexed_execution": 7}
    repaired = ok_json(storage, "storage", "fsck", "--repair")
    assert repaired["repaired"] == {"index_not_built": 1, "unindexed_execution": 7}
    assert ok_json(storage, "storage", "fsck")["found"] == {}
    reads = record_reads(monkeypatch, provider)
    indexed = [ok_json(storage, "execution", "list"), *pages_cli(storage, 4, "--status", "completed,running")]
    assert ids(indexed[0]) == ["later", *expected]
    assert [ids(page) for page in indexed[1:]] == [["later", "e06", "e05", "e04"], ["e01", "e02"]]
    with running_server(StorageService(provider)) as url:
        status, page = get(url, limit=2)
        assert status == 200 and ids(page) == ["later", "e06"]
    assert reads == []


@pytest.mark.parametrize("started", ["2026-03-01T10:00:00Z", "2026-03-01T12:00:00+02:00", None])
def test_the_index_and_the_scan_show_the_same_row(started):
    from factflow_storage import execution_index as index

    kept = {"execution_id": "x y", "status": "failed", "started_at": started,
            "finished_at": "2026-03-01T10:00:01.5Z", "object_count": 3}
    entry = index.parse(index.entry_name("x y", kept))
    assert entry is not None and entry.row == index.summary(kept)
    assert entry.position == index.position("x y", started)


def test_a_long_id_is_listed_paged_and_deleted(storage, provider):
    long_id = "long-" + "x" * 195  # the longest id a write accepts (200 bytes), index bytes on top
    season(provider, 3)
    refused = run(storage, "execution", "start", long_id + "y")
    assert refused.exit_code == 1 and "longer than 200 bytes" in refused.stderr
    started = ok_json(storage, "execution", "start", long_id)
    assert started["status"] == "running"
    [first] = ok_json(storage, "execution", "list", "--limit", "1")["executions"]
    assert first["execution_id"] == long_id and first["status"] == "running"
    executions.set_status(provider, long_id, "completed")
    rows = ok_json(storage, "execution", "list", "--status", "completed")["executions"]
    assert [row["execution_id"] for row in rows] == [long_id, "e01"]
    assert ok_json(storage, "storage", "fsck")["found"] == {}
    assert run(storage, "execution", "delete", long_id, "--yes").exit_code == 0
    assert ids(ok_json(storage, "execution", "list")) == ["e01", "e02", "e00"]
    assert not any(name.startswith("_factflow/execution-index/") and "_=" in name for name in raw_names(provider))


def test_a_first_page_lists_no_more_of_the_index_than_it_shows(s3_server):
    """S3 answers a listing in time proportional to the keys it returns: a page of 10 out
    of 120 asks for a dozen index names, not a page of 1000 (and not a second one ahead),
    and paging on by cursor still walks every execution in order."""
    from factflow_storage import create_storage_provider
    from listen_standin import ListenStandIn

    bucket = s3_server.new_bucket()
    expected = []
    with create_storage_provider(f"minio://{bucket}", s3_server.options()) as writer:
        for n in range(120):
            execution_id = f"x{n:03d}"
            writer.write_execution(execution_id, {"execution_id": execution_id, "status": "completed",
                                                  "started_at": f"2026-03-01T{n // 60:02d}:{n % 60:02d}:00.000Z",
                                                  "finished_at": f"2026-03-01T{n // 60:02d}:{n % 60:02d}:30.000Z"})
            expected.insert(0, execution_id)
    with ListenStandIn(s3_server.endpoint) as standin:
        options = dict(s3_server.options(), endpoint=standin.endpoint)
        with create_storage_provider(f"minio://{bucket}", options) as provider:
            service = StorageService(provider)
            assert ids(service.executions(limit=10)) == expected[:10]  # the index's marker is read once
            standin.requests.clear()
            first = service.executions(limit=10)
            listings = [path for method, path in standin.requests if method == "GET" and "list-type=2" in path]
            assert ids(first) == expected[:10]
            assert len(listings) == 1, standin.requests
            assert "max-keys=12" in listings[0], listings[0]
            seen, cursor = ids(first), first["next_cursor"]
            while cursor:
                page = service.executions(limit=10, cursor=cursor)
                seen += ids(page)
                cursor = page["next_cursor"]
            assert seen == expected
            assert [row["execution_id"] for row in service.iter_executions()] == expected
