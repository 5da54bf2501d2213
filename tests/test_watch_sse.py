"""The SSE endpoint's protocol: resuming with Last-Event-ID, heartbeats, the timeout,
bad requests in the error shape, several executions, one shared source."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import orjson
import pytest

from factflow_storage.executions import set_status
from factflow_storage.server import event_routes
from factflow_storage.service import StorageService
from factflow_storage.watch.feed import HUB
from server_fixture import running_server
from waiting import eventually
from watch_support import (RawSSE, Writer, assert_same_writes, join_reader, reader_thread, wait_armed, wait_for_events,
                           write_objects)

EXEC = "run-3"


@pytest.fixture
def served(file_storage):
    provider = file_storage.open()
    set_status(provider, EXEC, "running")
    with running_server(StorageService(provider)) as url:
        yield provider, url


def test_last_event_id_resumes_with_exactly_what_was_missed(served):
    provider, url = served
    written = write_objects(provider, EXEC, range(10), pause=0)
    reader = RawSSE(url, [("execution_id", EXEC)])
    assert reader.read(max_events=4) is False
    # Away for a while: more writes, some of them in routes seen before.
    written += write_objects(provider, EXEC, range(10, 25))
    assert reader.read(max_events=12) is False
    writer = Writer(provider, EXEC, range(25, 40))
    writer.start()
    written += writer.finish()
    reader.follow()
    assert reader.connections == 3
    assert_same_writes(reader.keys(), written)


def test_resume_from_an_old_id_replays_everything_after_it(served):
    provider, url = served
    written = write_objects(provider, EXEC, range(6))
    set_status(provider, EXEC, "completed")
    first = RawSSE(url, [("execution_id", EXEC)])
    assert first.read() is True
    ids = [event_id for event_id, name, _ in first.events if name == "storage.object.created"]
    for index, event_id in enumerate(ids):
        again = RawSSE(url, [("execution_id", EXEC)])
        again.last_id = event_id
        assert again.read() is True
        assert again.keys() == written[index + 1:]


def test_stream_closes_after_timeout_and_sends_heartbeats(served, monkeypatch):
    provider, url = served
    monkeypatch.setattr(event_routes, "HEARTBEAT_SECONDS", 0.2)
    reader = RawSSE(url, [("execution_id", EXEC), ("timeout", "2")])
    assert reader.read(deadline=30) is False  # closed by the server, no completion
    assert reader.events == []
    assert ": heartbeat" in reader.comments


@pytest.mark.parametrize("query,headers,message", [
    ("", {}, "execution_id is required"),
    ("execution_id=a/b", {}, "invalid execution id"),
    ("execution_id=x&timeout=0", {}, "timeout must be between 1 and 3600"),
    ("execution_id=x&timeout=3601", {}, "timeout must be between 1 and 3600"),
    ("execution_id=x&route_id=..", {}, "invalid route"),
    ("execution_id=x", {"Last-Event-ID": "not-an-id"}, "invalid event id"),
])
def test_bad_requests_answer_the_error_shape(served, query, headers, message):
    _, url = served
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
    connection.request("GET", "/api/v1/storage/events?" + query, headers=headers)
    response = connection.getresponse()
    body = orjson.loads(response.read())
    assert response.status == 400
    assert response.getheader("Content-Type") == "application/json"
    assert set(body) == {"detail", "error_code", "timestamp"}
    assert message in body["detail"]


def test_several_executions_complete_together(served):
    provider, url = served
    set_status(provider, "other", "running")
    reader = RawSSE(url, [("execution_id", EXEC), ("execution_id", "other")])
    thread = reader_thread(reader)
    wait_armed(provider, EXEC)
    other = wait_armed(provider, "other")
    written = write_objects(provider, EXEC, range(3)) + write_objects(provider, "other", range(3, 5))
    set_status(provider, "other", "failed")
    wait_for_events(reader, len(written))
    eventually(lambda: other.record["status"] == "failed", "the stream to see 'other' failed")
    assert reader.completions() == []  # one execution still running
    set_status(provider, EXEC, "completed")
    join_reader(thread)
    assert_same_writes(reader.keys(), written)
    assert reader.completions() == [{"execution_id": EXEC, "status": "completed"},
                                    {"execution_id": "other", "status": "failed"}]


def test_watchers_of_one_execution_share_one_source(served):
    provider, url = served
    readers = [RawSSE(url, [("execution_id", EXEC)] + ([("route_id", "beta")] if i else [])) for i in range(4)]
    threads = [reader_thread(reader) for reader in readers]
    wait_armed(provider, EXEC, watchers=4)
    feeds = [slot for slot in HUB._feeds if slot == (id(provider), EXEC)]
    assert len(feeds) == 1
    assert HUB._feeds[feeds[0]][1] == 4  # four watchers on that one feed
    written = write_objects(provider, EXEC, range(8))
    set_status(provider, EXEC, "completed")
    for thread in threads:
        join_reader(thread)
    assert_same_writes(readers[0].keys(), written)
    for reader in readers[1:]:
        assert reader.keys() == [key for key in written if "/beta/" in key]


def test_extension_and_stage_filters(served):
    provider, url = served
    provider.write(f"executions/{EXEC}/alpha/parse/a.md", b"# a")
    provider.write(f"executions/{EXEC}/alpha/render/b.md", b"# b")
    provider.write(f"executions/{EXEC}/alpha/parse/c.json", b"{}")
    set_status(provider, EXEC, "completed")
    reader = RawSSE(url, [("execution_id", EXEC), ("stage", "parse"), ("extension", "md")])
    assert reader.read() is True
    assert reader.keys() == [f"executions/{EXEC}/alpha/parse/a.md"]
    _, name, data = reader.events[0]
    assert name == "storage.object.created"
    assert list(data) == ["key", "size", "route_id", "stage", "created_at"]
    assert (data["size"], data["route_id"], data["stage"]) == (3, "alpha", "parse")
