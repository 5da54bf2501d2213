"""Live watch end to end, on every storage kind: a writer thread writes across routes
while watchers (the CLI in a subprocess, a raw SSE client over a real waitress) collect."""

from __future__ import annotations

import os
import threading
import time

import pytest

from factflow_storage.executions import set_status
from factflow_storage.server.app import create_server, stop_server
from factflow_storage.service import StorageService
from listen_standin import ListenStandIn
from server_fixture import running_server
from waiting import eventually
from watch_support import (RawSSE, Writer, assert_same_writes, cli_env, finish_cli, join_reader, object_keys,
                           reader_thread, s3_watched, start_cli_watch, wait_armed, wait_for_events, watched,
                           write_objects)

__all__ = ["s3_watched", "watched"]

EXEC = "run-1"


def test_cli_and_sse_collect_exactly_what_is_written(watched):
    provider = watched.target.open()
    set_status(provider, EXEC, "running")
    before = write_objects(provider, EXEC, range(6), pause=0)
    cli = start_cli_watch(cli_env(watched.target), "--execution", EXEC)
    with running_server(StorageService(provider)) as url:
        everything = RawSSE(url, [("execution_id", EXEC)])
        beta = RawSSE(url, [("execution_id", EXEC), ("route_id", "beta")])
        readers = [reader_thread(everything), reader_thread(beta)]
        # A watcher replays only once armed: when each has its first replayed event, the
        # writes below arrive live.
        cli.wait_for_rows(len(before))
        wait_for_events(everything, len(before))
        wait_for_events(beta, 2)
        writer = Writer(watched.target.open(), EXEC, range(6, 60))
        writer.start()
        written = before + writer.finish()
        for thread in readers:
            join_reader(thread)
    rows, code, stderr = finish_cli(cli)
    assert code == 0, stderr
    assert_same_writes(object_keys(rows), written)
    assert rows[-1] == {"event": "execution.completed", "execution_id": EXEC, "status": "completed"}
    first = rows[0]
    assert list(first) == ["event", "id", "key", "size", "route_id", "stage", "created_at"]
    assert (first["route_id"], first["stage"], first["size"]) == ("alpha", "parse", len(b'{"n":0}'))

    assert_same_writes(everything.keys(), written)
    assert everything.completions() == [{"execution_id": EXEC, "status": "completed"}]
    assert beta.keys() == [key for key in written if "/beta/" in key]
    assert all(event_id for event_id, _, _ in everything.events)


def test_watch_of_a_finished_execution_replays_and_completes(watched):
    provider = watched.target.open()
    set_status(provider, EXEC, "running")
    written = write_objects(provider, EXEC, range(12), pause=0)
    set_status(provider, EXEC, "failed")
    rows, code, stderr = finish_cli(start_cli_watch(cli_env(watched.target), "--execution", EXEC, "--route", "gamma"))
    assert code == 3, stderr
    assert object_keys(rows) == [key for key in written if "/gamma/" in key]
    assert rows[-1] == {"event": "execution.completed", "execution_id": EXEC, "status": "failed"}
    with running_server(StorageService(provider)) as url:
        reader = RawSSE(url, [("execution_id", EXEC)])
        assert reader.read(deadline=60) is True
    assert_same_writes(reader.keys(), written)
    assert reader.completions() == [{"execution_id": EXEC, "status": "failed"}]


class RestartableServer:
    """A factflow server that can be stopped and started again on the same port."""

    def __init__(self, target):
        self.target = target
        self.port = 0
        self._server = None
        self._thread = None

    def start(self) -> str:
        # A new provider each time: nothing carries over from the old process but storage.
        self._server = create_server(StorageService(self.target.open()), "127.0.0.1", self.port, threads=8)
        self.port = self._server.effective_port
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_server(self._server)
        self._thread.join(timeout=10)


def test_factflow_server_restarted_mid_watch_loses_nothing(watched):
    provider = watched.target.open()
    set_status(provider, EXEC, "running")
    server = RestartableServer(watched.target)
    url = server.start()
    try:
        raw = RawSSE(url, [("execution_id", EXEC)])
        raw_thread = reader_thread(raw)
        cli = start_cli_watch(cli_env(watched.target, FACTFLOW_API_URL=url), "--execution", EXEC)
        first = Writer(watched.target.open(), EXEC, range(0, 25), status=None)
        first.start()
        written = first.finish()
        # Both watchers are connected and have every write so far before the server goes.
        cli.wait_for_rows(len(written))
        wait_for_events(raw, len(written))
        server.stop()
        written += write_objects(provider, EXEC, range(25, 35))  # while no server runs
        cli.wait_for_stderr("reconnecting")
        server.start()
        second = Writer(watched.target.open(), EXEC, range(35, 50))
        second.start()
        written += second.finish()
        join_reader(raw_thread)
        rows, code, stderr = finish_cli(cli)
    finally:
        server.stop()
    assert raw.connections >= 2
    assert_same_writes(raw.keys(), written)
    assert code == 0, stderr
    assert "reconnecting" in stderr
    assert_same_writes(object_keys(rows), written)
    assert rows[-1]["event"] == "execution.completed"


@pytest.mark.s3
def test_s3_server_restarted_mid_watch_loses_nothing(s3_watched, request):
    import s3server

    watched = s3_watched

    server = request.getfixturevalue("s3_server")
    provider = watched.target.open()
    set_status(provider, EXEC, "running")
    cli = start_cli_watch(cli_env(watched.target), "--execution", EXEC)
    with running_server(StorageService(provider)) as url:
        raw = RawSSE(url, [("execution_id", EXEC)])
        raw_thread = reader_thread(raw)
        written = write_objects(watched.target.open(), EXEC, range(0, 20))
        # Both watchers have every write so far (replayed or live) before S3 goes away.
        cli.wait_for_rows(len(written))
        wait_for_events(raw, len(written))
        restart_s3(server, s3server, watched)
        # Written at once after the restart, before the sources reconnect: a sweep finds them.
        writer = watched.target.open()
        written += write_objects(writer, EXEC, range(20, 40))
        set_status(writer, EXEC, "completed")
        join_reader(raw_thread)
    rows, code, stderr = finish_cli(cli)
    assert code == 0, stderr
    assert_same_writes(object_keys(rows), written)
    assert_same_writes(raw.keys(), written)


def restart_s3(server, s3server, watched) -> None:
    """Restart the S3 gateway (radosgw; its data lives in the OSD) or minio, and the stand-in."""
    gateway = next(proc for proc in server.processes if proc.args[0] in ("radosgw", "minio"))
    s3server._stop(gateway)
    server.processes.remove(gateway)
    if watched.standin is not None:
        watched.standin.close()
    time.sleep(1.0)
    env = None
    if gateway.args[0] == "minio":
        env = dict(os.environ, MINIO_ROOT_USER=server.access_key, MINIO_ROOT_PASSWORD=server.secret_key)
    s3server._spawn(server, "rgw-restarted", list(gateway.args), env=env)
    s3server._wait_http(server, server.url + ("/minio/health/ready" if env else "/"))
    if watched.standin is not None:
        watched.standin = ListenStandIn(server.endpoint, port=watched.standin.port)


@pytest.mark.s3
def test_one_of_two_executions_ending_has_its_unreported_writes_sent_at_once(s3_server, monkeypatch):
    """Writes no source reported (a journal poll leaves those it finds once the record is
    terminal to the final listing) are listed when their execution ends, not when the
    last watched one does: by then the other's newer writes would have raised the event
    id's floor past them, and a reconnect with it would pass over them."""
    from factflow_storage import create_storage_provider
    from factflow_storage.providers.s3_journal import journal_of
    from factflow_storage.watch import feed
    from factflow_storage.watch.s3_sources import JournalSource

    monkeypatch.setattr(feed, "source_for", JournalSource)  # the journal, whatever the server offers
    bucket = s3_server.new_bucket()
    provider = create_storage_provider(f"minio://{bucket}", s3_server.options())
    journal_of(provider).enabled = True
    quiet = create_storage_provider(f"minio://{bucket}", s3_server.options())
    journal_of(quiet).enabled = False  # its writes leave no marker: no source reports them
    for execution_id in ("A", "B"):
        set_status(provider, execution_id, "running")
    with running_server(StorageService(provider)) as url:
        raw = RawSSE(url, [("execution_id", "A"), ("execution_id", "B")])
        raw_thread = reader_thread(raw)
        written = write_objects(provider, "B", [0], pause=0)
        wait_for_events(raw, 1)  # live: the replay is out
        written += write_objects(quiet, "A", range(1, 4), pause=0)
        set_status(quiet, "A", "completed")
        wait_for_events(raw, 4)  # while B runs on
        assert raw.completions() == []
        # A started anew and ended again within one poll of its record: the status never
        # changes as the feed sees it, but the record does, so the final listing covers A.
        written += write_objects(quiet, "A", range(4, 7), pause=0)
        again = dict(quiet.read_execution("A"), finished_at="2099-01-01T00:00:00.000Z", object_count=6)
        quiet.write_execution("A", again)
        feed = wait_armed(provider, "A")
        eventually(lambda: feed.record == again, "the feed to read A's new record")
        set_status(provider, "B", "completed")
        join_reader(raw_thread)
    assert_same_writes(raw.keys(), written)
    assert {done["execution_id"] for done in raw.completions()} == {"A", "B"}
    quiet.close()
    provider.close()
