"""Watch event ids stay small whatever the write rate, a resume from any of them loses
nothing, and the CLI shows each object once even when a resume re-sends part of a burst."""

from __future__ import annotations

import collections
import subprocess

import orjson
import pytest

from factflow_storage.executions import set_status
from factflow_storage.service import StorageService
from factflow_storage.watch.events import MAX_ID_BYTES
from server_fixture import running_server
from tcp_counter import CountingRelay
from watch_support import RawSSE, Writer, assert_same_writes, cli_env, factflow, write_objects

EXEC = "burst"
BURST = 600  # within the filesystem source's 1 s settle window: 60 ids' worth many times over


@pytest.fixture
def served(file_storage):
    provider = file_storage.open()
    set_status(provider, EXEC, "running")
    with running_server(StorageService(provider)) as url:
        yield provider, url, file_storage


def test_ids_stay_under_512_bytes_during_a_burst(served):
    provider, url, _ = served
    reader = RawSSE(url, [("execution_id", EXEC)])
    writer = Writer(provider, EXEC, range(BURST), pause=0)
    writer.start()
    assert reader.read(deadline=60) is True
    written = writer.finish()
    ids = [event_id or "" for event_id, _, _ in reader.events]
    assert max(len(event_id.encode()) for event_id in ids) < MAX_ID_BYTES, max(map(len, ids))
    assert_same_writes(reader.keys(), written)


def test_a_resume_from_any_id_of_a_burst_loses_nothing(served):
    provider, url, _ = served
    written = write_objects(provider, EXEC, range(BURST), pause=0)
    set_status(provider, EXEC, "completed")
    first = RawSSE(url, [("execution_id", EXEC)])
    assert first.read() is True
    objects = [(event_id, data["key"]) for event_id, name, data in first.events if name == "storage.object.created"]
    for index in (0, 59, 60, 61, 250, BURST - 2):
        again = RawSSE(url, [("execution_id", EXEC)])
        again.last_id = objects[index][0]
        assert again.read() is True
        missed = {key for _, key in objects[index + 1:]}
        got = collections.Counter(again.keys())
        assert missed <= set(got), f"resume from event {index} lost {len(missed - set(got))}"
        assert max(got.values()) == 1
        repeated = set(got) - missed
        assert repeated <= {key for _, key in objects[:index + 1]}
    assert sorted(key for _, key in objects) == sorted(written)


def test_the_cli_prints_each_object_once_across_a_cut_connection(served, tmp_path):
    provider, url, storage = served
    relay = CountingRelay(url)
    try:
        env = cli_env(storage, FACTFLOW_API_URL=relay.url)
        proc = subprocess.Popen(factflow("-v", "storage", "watch", "--execution", EXEC, "--output", "json"),
                                env=env, stdout=subprocess.PIPE, stderr=(tmp_path / "stderr").open("wb"))
        written = write_objects(provider, EXEC, range(BURST // 2), pause=0)
        rows = [orjson.loads(proc.stdout.readline()) for _ in range(BURST // 4)]
        relay.cut()  # mid-burst: the resume re-sends what the bounded id could not name
        written += write_objects(provider, EXEC, range(BURST // 2, BURST), pause=0)
        set_status(provider, EXEC, "completed")
        # The rest through the same buffered reader: part of it may already be buffered.
        rows += [orjson.loads(line) for line in proc.stdout]
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        relay.close()
    stderr = (tmp_path / "stderr").read_text()
    assert proc.returncode == 0, stderr
    assert relay.connections >= 2
    assert "resuming from the last event id" in stderr  # -v shows the library's log
    keys = [row["key"] for row in rows if row["event"] == "storage.object.created"]
    assert_same_writes(keys, written)
    assert rows[-1] == {"event": "execution.completed", "execution_id": EXEC, "status": "completed"}

