"""``replay=counts`` on the SSE endpoint: a view starts from the current state (one
``storage.counts`` event) and then gets only new writes, each write counted exactly once
between the two, also when it races the stream's start."""

from __future__ import annotations

import collections
import threading

import pytest

from factflow_storage.executions import set_status
from factflow_storage.service import StorageService
from server_fixture import http_request, running_server
from waiting import eventually
from watch_support import ROUTES, RawSSE, write_objects

EXEC = "counted"
COUNTS = "storage.counts"


@pytest.fixture
def served(file_storage):
    provider = file_storage.open()
    set_status(provider, EXEC, "running")
    with running_server(StorageService(provider)) as url:
        yield provider, url


def counts_of(reader: RawSSE) -> dict:
    found = [data for _, name, data in reader.events if name == COUNTS]
    assert len(found) == 1, reader.events[:3]
    return found[0]


def test_the_stream_starts_with_counts_then_sends_only_new_writes(served):
    provider, url = served
    existing = write_objects(provider, EXEC, range(30), pause=0)
    reader = RawSSE(url, [("execution_id", EXEC), ("replay", "counts")])
    assert reader.read(max_events=1) is False
    counts = counts_of(reader)
    assert reader.events[0][1] == COUNTS and reader.events[0][0]  # first, and resumable
    assert counts["objects"] == 30 and counts["bytes"] == sum(len(provider.read(key)) for key in existing)
    assert [(row["route_id"], row["stage"], row["objects"]) for row in counts["routes"]] == \
        [(route, "parse", 10) for route in sorted(ROUTES)]
    # Away after the counts: the reconnect with their id gets exactly the writes since.
    new = write_objects(provider, EXEC, range(30, 35), pause=0)
    set_status(provider, EXEC, "completed")
    reader.follow()
    assert reader.keys() == new
    assert reader.completions() == [{"execution_id": EXEC, "status": "completed"}]


def test_a_write_racing_the_start_is_counted_exactly_once(served):
    provider, url = served
    reader = RawSSE(url, [("execution_id", EXEC), ("replay", "counts")])
    written: list[str] = []

    def write() -> None:
        # Writes go on while the stream starts, so some land during its listing, and end
        # 50 writes after its counts arrived, so some surely come live, however slowly it starts.
        index, after = 0, None
        while (after is None or index < after + 50) and index < 5000:  # bounded if the stream never starts
            if after is None and any(name == COUNTS for _, name, _ in reader.events):
                after = index
            written.extend(write_objects(provider, EXEC, [index], pause=0.002))
            index += 1
        set_status(provider, EXEC, "completed")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    eventually(lambda: len(written) >= 100, "100 objects written")
    reader.follow()
    writer.join(60)
    assert not writer.is_alive()
    counts = counts_of(reader)
    live = reader.keys()
    assert live and len(set(live)) == len(live)  # some writes came live, none twice
    assert counts["objects"] + len(live) == len(written)
    per_route = collections.Counter(key.split("/")[2] for key in live)
    for row in counts["routes"]:
        per_route[row["route_id"]] += row["objects"]
    assert per_route == collections.Counter(key.split("/")[2] for key in written)


def test_an_unknown_replay_is_a_bad_request_in_the_error_shape(served):
    _, url = served
    reply = http_request(url, "GET", f"/api/v1/storage/events?execution_id={EXEC}&replay=everything")
    assert reply.status == 400
    assert "replay must be one of events, counts" in reply.json()["detail"]
    assert set(reply.json()) >= {"detail", "error_code", "timestamp"}


def test_the_openapi_document_describes_replay(served):
    _, url = served
    document = http_request(url, "GET", "/api/v1/openapi.json").json()
    operation = document["paths"]["/api/v1/storage/events"]["get"]
    replay = [param for param in operation["parameters"] if param["name"] == "replay"]
    assert replay and replay[0]["schema"]["enum"] == ["events", "counts"]
    assert "storage.counts" in operation["description"]
