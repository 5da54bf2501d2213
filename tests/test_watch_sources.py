"""The watch sources on their own: what each reports, and what a poll costs."""

from __future__ import annotations

import io
import threading
import time
from urllib.parse import unquote_plus

import pytest

from factflow_storage.keys import RESERVED_PREFIX, SIDECAR_SUFFIX
from factflow_storage.watch.fs_source import FilesystemSource
from factflow_storage.providers.s3_journal import journal_of, journal_prefix, marker_name
from factflow_storage.providers.s3_listen import listen_supported
from factflow_storage.watch.s3_sources import JournalSource, ListenSource
from factflow_storage.watch.feed import source_for
from listen_standin import ListenStandIn
from waiting import eventually
from watch_support import s3_watched

__all__ = ["s3_watched"]  # a fixture: imported for pytest to find

EXEC = "run-5"
PREFIX = f"executions/{EXEC}/"


class Collector:
    def __init__(self, source, provider_prefix: str = PREFIX):
        self.reports = []
        self.armed, self.stop = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=source.run, args=(provider_prefix, self.reports.append, self.armed,
                                                               self.stop), daemon=True)
        self.thread.start()
        assert self.armed.wait(30)

    def finish(self, expected: int, deadline: float = 30) -> list:
        end = time.monotonic() + deadline
        while len(self.reports) < expected and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.5)  # anything extra (a second report of one write) would land by now
        self.stop.set()
        self.thread.join(10)
        return self.reports


def test_filesystem_source_reports_each_write_once_and_never_temp_files_or_sidecars(file_storage):
    provider = file_storage.open()
    collector = Collector(FilesystemSource(provider))  # the execution directory does not exist yet
    keys = [f"{PREFIX}{route}/stage-{i % 3}/m{i}" for i, route in enumerate(["a", "b", "c", "d"] * 5)]
    for key in keys:
        provider.write(key, b"x" * 100)
    # A second write of a key is a second event. (Not before the first was reported: a
    # version replaced before the new directory's sweep ever saw it has no event.)
    eventually(lambda: keys[0] in [info.key for info in collector.reports], "the first write's report")
    provider.write(keys[0], b"rewritten")
    reports = collector.finish(len(keys) + 1)
    reported = [info.key for info in reports]
    assert sorted(reported) == sorted(keys + [keys[0]])
    assert not any(key.endswith(SIDECAR_SUFFIX) or RESERVED_PREFIX in key for key in reported)
    assert [info.size for info in reports if info.key == keys[0]] == [100, 9]


def test_filesystem_source_ignores_writes_outside_its_execution(file_storage):
    provider = file_storage.open()
    provider.write(f"{PREFIX}a/s/first", b"1")
    collector = Collector(FilesystemSource(provider))
    provider.write("executions/another/a/s/x", b"2")
    provider.write("elsewhere/x", b"3")
    provider.write(f"{PREFIX}a/s/second", b"4")
    assert [info.key for info in collector.finish(1)] == [f"{PREFIX}a/s/second"]


@pytest.mark.s3
def test_listen_api_absence_is_detected(s3_watched, s3_server):
    provider = s3_watched.target.open()
    has_listen = s3_watched.kind == "s3-listen" or s3_server.kind == "minio"
    assert listen_supported(provider) is has_listen
    assert isinstance(source_for(provider), ListenSource if has_listen else JournalSource)


@pytest.mark.s3
def test_s3_sources_report_each_write(s3_watched):
    provider = s3_watched.target.open()
    source = source_for(provider)
    collector = Collector(source)
    keys = [f"{PREFIX}{route}/parse/m{i:03d}" for i, route in enumerate(["a", "b"] * 6)]
    writer = s3_watched.target.open()
    for key in keys:
        writer.write(key, b"payload")
    assert sorted(info.key for info in collector.finish(len(keys))) == sorted(keys)


def test_a_journal_poll_reads_only_recent_markers(s3_server):
    provider = _radosgw_provider(s3_server)
    old = int(time.time() * 1000) - 3600_000
    for i in range(300):  # an execution's long history, an hour old
        name, body = marker_name(f"{PREFIX}a/s/old{i:04d}", stamp_ms=old + i)
        provider.put_record(name, body)
    source = JournalSource(provider)
    listed: list[int] = []
    original = source._markers

    def counting(prefix, start_after):
        found = list(original(prefix, start_after))
        listed.append(len(found))
        return found

    source._markers = counting
    collector = Collector(source)
    fresh = [f"{PREFIX}a/s/new{i}" for i in range(3)]
    for key in fresh:
        provider.write(key, b"n")
    assert sorted(info.key for info in collector.finish(3)) == fresh
    assert journal_of(provider).enabled is True  # radosgw: the provider keeps the journal itself
    assert max(listed) == 3  # never the 300 old markers


def test_a_journal_poll_reports_nothing_it_listed_once_the_record_is_terminal(s3_server):
    """A finished execution's markers go in one multi-object delete, in no set order: a
    poll made meanwhile can find newer markers whose older ones are gone. Reported live,
    they would come ahead of those older writes (the watchers' final listing delivers
    them), out of write order. The record is written before the markers go, so a poll
    reads it after its listing and reports nothing from a listing it cannot trust."""
    from factflow_storage.executions import set_status

    provider = _radosgw_provider(s3_server)
    journal_of(provider).enabled = False  # the test places the markers itself
    set_status(provider, EXEC, "running")
    keys = [f"{PREFIX}a/s/m{i:02d}" for i in range(10)]
    for key in keys:
        provider.write(key, b"x")
    # The newer half, as a poll finds them once the older half is gone; stamped ahead, so
    # every poll of the test lists them however slowly it runs.
    ahead = int(time.time() * 1000) + 600_000
    for i, key in enumerate(keys[5:]):
        provider.put_record(*marker_name(key, stamp_ms=ahead + i))

    source = JournalSource(provider)
    polls: list[int] = []
    original = source._markers

    def listed_then_finished(prefix, start_after):
        found = list(original(prefix, start_after))
        if not polls:  # the record turns terminal between the first listing and its check
            set_status(provider, EXEC, "completed")
        polls.append(len(found))
        return found

    source._markers = listed_then_finished
    collector = Collector(source)
    eventually(lambda: len(polls) >= 3, "three polls")
    assert polls[0] == 5 and collector.reports == []
    # Not remembered as seen: once the execution runs again (started anew), they come.
    set_status(provider, EXEC, "running")
    assert [info.key for info in collector.finish(5)] == keys[5:]


def test_a_key_too_long_for_a_marker_name_is_read_from_its_body(s3_server):
    provider = _radosgw_provider(s3_server)
    collector = Collector(JournalSource(provider))
    key = f"{PREFIX}a/s/" + "k" * 990
    provider.write(key, b"long")
    name, body = marker_name(key)
    assert name.count("/") == 2 and body == key.encode()
    assert [info.key for info in collector.finish(1)] == [key]


def _radosgw_provider(server):
    from factflow_storage import create_storage_provider

    provider = create_storage_provider(f"minio://{server.new_bucket()}", server.options())
    if server.kind == "minio":
        journal_of(provider).enabled = True  # MinIO has the listen API; exercise the journal anyway
    return provider


def test_journal_names_sort_by_time():
    first, _ = marker_name(f"{PREFIX}z/s/1", stamp_ms=1_000)
    second, _ = marker_name(f"{PREFIX}a/s/2", stamp_ms=2_000)
    assert first.startswith(journal_prefix(EXEC)) and first < second


def test_standin_forwards_s3_and_streams_minio_records(s3_server):
    with ListenStandIn(s3_server.endpoint) as standin:
        client = s3_server.client(endpoint=standin.endpoint)
        bucket = s3_server.new_bucket()
        records = []
        listening = client.listen_bucket_notification(bucket_name=bucket, prefix="pre/",
                                                      events=("s3:ObjectCreated:*",))
        reader = threading.Thread(target=lambda: records.append(next(iter(listening))), daemon=True)
        reader.start()
        eventually(lambda: standin._listeners, "the listener to be registered")
        client.put_object(bucket_name=bucket, object_name="other/x", data=io.BytesIO(b"0"), length=1)
        client.put_object(bucket_name=bucket, object_name="pre/a b", data=io.BytesIO(b"12345"), length=5)
        reader.join(10)
        listening.__exit__(None, None, None)
        assert client.get_object(bucket_name=bucket, object_name="pre/a b").read() == b"12345"
    (record,) = records[0]["Records"]
    assert record["eventName"] == "s3:ObjectCreated:Put"
    assert unquote_plus(record["s3"]["object"]["key"]) == "pre/a b"
    assert record["s3"]["object"]["size"] == 5
