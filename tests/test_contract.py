"""The StorageProtocol contract, written once and run against every provider kind.

Everything here must hold on every provider; what only one provider does (the filesystem's
conflicts, sidecar files, temp files) lives in that provider's own test module.
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta, timezone

import pytest

from factflow_storage import executions
from factflow_storage.errors import BadRequest, InvalidKey, InvalidRange, NotFound
from factflow_storage.protocol import ObjectInfo, PrefixInfo, StorageProtocol


def s3_sorted(keys):
    return sorted(keys, key=lambda key: key.encode("utf-8"))


def keys_of(infos):
    return [info.key for info in infos]


def put_all(provider, keys, data=b"x"):
    for key in keys:
        provider.write(key, data)


def parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text[:-1] + "+00:00")


class OnlyRead:
    """A stream that can only be read: no seek, no tell, no len, like a pipe."""

    def __init__(self, data: bytes, chunk: int = 65536):
        self._data = data
        self._pos = 0
        self._chunk = chunk

    def read(self, size: int = -1) -> bytes:
        size = self._chunk if size is None or size < 0 else min(size, self._chunk)
        chunk = self._data[self._pos:self._pos + size]
        self._pos += len(chunk)
        return chunk


def test_provider_implements_the_protocol(provider):
    assert isinstance(provider, StorageProtocol)
    assert isinstance(provider.uri, str) and provider.uri
    provider.check()


# -- bytes and metadata round trips ----------------------------------------------------


def test_write_then_read_returns_the_same_bytes(provider):
    data = bytes(range(256)) * 3
    provider.write("roundtrip/all-bytes.bin", data)
    assert provider.read("roundtrip/all-bytes.bin") == data
    assert provider.exists("roundtrip/all-bytes.bin")


def test_empty_object(provider):
    stored = provider.write("empty/zero", b"")
    assert stored["content_length"] == 0
    assert stored["checksum"] == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert provider.read("empty/zero") == b""
    assert provider.stat("empty/zero").size == 0
    with provider.open("empty/zero") as stream:
        assert stream.length == 0
        assert stream.read() == b""
    assert [(i.key, i.size) for i in provider.list("empty/")] == [("empty/zero", 0)]


def test_write_from_a_stream_of_unknown_length(provider):
    data = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32 + 1)  # a little over 3 MiB
    stored = provider.write("stream/pipe.bin", OnlyRead(data))
    assert stored["content_length"] == len(data)
    assert stored["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert provider.read("stream/pipe.bin") == data
    assert provider.stat("stream/pipe.bin").size == len(data)


def test_write_from_a_file_object(provider, tmp_path):
    source = tmp_path / "source.txt"
    source.write_bytes(b"line one\nline two\n")
    with open(source, "rb") as handle:
        provider.write("stream/file.txt", handle)
    with open(source, "rb") as handle:
        provider.write("stream/bytesio.txt", io.BytesIO(handle.read()))
    assert provider.read("stream/file.txt") == b"line one\nline two\n"
    assert provider.read("stream/bytesio.txt") == b"line one\nline two\n"


def test_metadata_round_trip_keeps_unknown_fields_and_replaces_computed_ones(provider):
    data = b'{"hello": "world"}'
    passed = {
        "key": "forged/key",
        "content_length": 999,
        "checksum": "sha256:" + "0" * 64,
        "created_at": "1999-01-01T00:00:00Z",
        "adapter": "web_scraper",
        "config_hash": "sha256:abc",
        "lineage": ["executions/e1/r/s/parent-1", "executions/e1/r/s/parent-2"],
        "custom": {"nested": [1, 2.5, None, True, "é"], "empty": {}},
        "x-unicode-日本": "値",
    }
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    stored = provider.write("meta/doc.json", data, passed)
    after = datetime.now(timezone.utc) + timedelta(seconds=5)

    assert stored["key"] == "meta/doc.json"
    assert stored["content_length"] == len(data)
    assert stored["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert before <= parse_time(stored["created_at"]) <= after
    for field in ("adapter", "config_hash", "lineage", "custom", "x-unicode-日本"):
        assert stored[field] == passed[field]
    assert stored["content_type"] == "application/json"  # guessed from '.json'
    assert provider.metadata("meta/doc.json") == stored
    assert passed["key"] == "forged/key"  # the caller's mapping is left alone


def test_metadata_of_a_large_blob_round_trips(provider):
    # S3 limits user metadata to 2 KiB; the blob must come back whole anyway.
    lineage = [f"executions/e1/route/stage/parent-{n:05d}" for n in range(300)]
    stored = provider.write("meta/large.txt", b"text", {"lineage": lineage, "note": "é" * 3000})
    assert provider.metadata("meta/large.txt") == stored
    assert provider.metadata("meta/large.txt")["lineage"] == lineage


def test_conventional_keys_get_provenance_from_the_key(provider):
    stored = provider.write("executions/e9/sitemap_scraper/web_scraper/msg-1.html", b"<p>",
                            {"adapter": "web_scraper"})
    assert stored["execution_id"] == "e9"
    assert stored["route_id"] == "sitemap_scraper"
    assert stored["stage"] == "web_scraper"
    assert stored["msg_id"] == "msg-1.html"
    assert stored["content_type"] == "text/html"
    assert provider.metadata("executions/e9/sitemap_scraper/web_scraper/msg-1.html") == stored


def test_writer_provenance_wins_over_the_key(provider):
    stored = provider.write("executions/e9/r/s/m", b"", {"route_id": "declared"})
    assert stored["route_id"] == "declared"
    assert provider.metadata("executions/e9/r/s/m")["route_id"] == "declared"


@pytest.mark.parametrize("key, kwargs, metadata, expected", [
    ("ct/page.html", {}, None, "text/html"),
    ("ct/notes.md", {}, None, "text/markdown"),
    ("ct/table.CSV", {}, None, "text/csv"),
    ("ct/no-extension", {}, None, "application/octet-stream"),
    ("ct/unknown.zzqx", {}, None, "application/octet-stream"),
    ("ct/explicit.bin", {"content_type": "application/vnd.factflow+json"}, None, "application/vnd.factflow+json"),
    ("ct/from-blob.bin", {}, {"content_type": "text/plain; charset=utf-8"}, "text/plain; charset=utf-8"),
    ("ct/argument-wins.json", {"content_type": "text/plain"}, {"content_type": "text/csv"}, "text/plain"),
])
def test_content_type_is_kept_or_guessed(provider, key, kwargs, metadata, expected):
    stored = provider.write(key, b"body", metadata, **kwargs)
    assert stored["content_type"] == expected
    assert provider.metadata(key)["content_type"] == expected
    with provider.open(key) as stream:
        assert stream.metadata["content_type"] == expected


def test_metadata_must_be_a_mapping(provider):
    with pytest.raises(BadRequest):
        provider.write("meta/bad", b"x", ["not", "a", "mapping"])  # type: ignore[arg-type]
    assert not provider.exists("meta/bad")


def test_overwrite_replaces_bytes_and_metadata(provider):
    provider.write("over/k.txt", b"first version", {"v": 1, "only-in-first": True})
    stored = provider.write("over/k.txt", b"second", {"v": 2})
    assert provider.read("over/k.txt") == b"second"
    blob = provider.metadata("over/k.txt")
    assert blob == stored
    assert blob["v"] == 2 and "only-in-first" not in blob
    assert blob["content_length"] == 6
    assert keys_of(provider.list("over/")) == ["over/k.txt"]


def test_stat_describes_the_object(provider):
    provider.write("stat/k.bin", b"12345", content_type="application/x-thing")
    info = provider.stat("stat/k.bin")
    assert isinstance(info, ObjectInfo)
    assert (info.key, info.size) == ("stat/k.bin", 5)
    assert info.last_modified.tzinfo is not None
    assert abs(info.last_modified - datetime.now(timezone.utc)) < timedelta(minutes=5)


def test_open_gives_info_metadata_and_bytes_of_one_version(provider):
    stored = provider.write("open/k.txt", b"abcdef", {"tag": "t"})
    with provider.open("open/k.txt") as stream:
        assert stream.info.key == "open/k.txt"
        assert stream.info.size == 6
        assert stream.metadata == stored
        assert b"".join(stream) == b"abcdef"


# -- range reads -----------------------------------------------------------------------


@pytest.mark.parametrize("start, length, expected", [
    (0, None, b"0123456789"),
    (0, 1, b"0"),
    (3, 4, b"3456"),
    (3, None, b"3456789"),
    (9, None, b"9"),
    (9, 1, b"9"),
    (7, 100, b"789"),  # a length past the end stops at the end, as HTTP ranges do
    (0, 10, b"0123456789"),
])
def test_range_reads(provider, start, length, expected):
    provider.write("range/digits", b"0123456789")
    with provider.open("range/digits", start=start, length=length) as stream:
        assert stream.info.size == 10
        assert stream.length == len(expected)
        assert stream.read() == expected


def test_range_reads_in_small_pieces(provider):
    provider.write("range/digits", b"0123456789")
    with provider.open("range/digits", start=2, length=5) as stream:
        assert [stream.read(2), stream.read(2), stream.read(2), stream.read(2)] == [b"23", b"45", b"6", b""]


@pytest.mark.parametrize("start, length", [(10, None), (10, 1), (11, None), (1000, 5), (-1, None), (0, -1)])
def test_ranges_past_the_end_or_negative_are_refused(provider, start, length):
    provider.write("range/digits", b"0123456789")
    with pytest.raises(InvalidRange):
        provider.open("range/digits", start=start, length=length)


def test_range_from_zero_on_an_empty_object_reads_nothing(provider):
    provider.write("range/empty", b"")
    with provider.open("range/empty", start=0) as stream:
        assert stream.read() == b""
    with pytest.raises(InvalidRange):
        provider.open("range/empty", start=1)


# -- listing order ---------------------------------------------------------------------

# No key is also a prefix of another ('a/b' beside 'a/b/c'): that case is the filesystem's
# documented conflict, tested on its own.
TRICKY_KEYS = [
    "o/a", "o/a b", "o/a!", "o/a-b", "o/a.b", "o/a0", "o/aA", "o/a_b", "o/a~",
    "o/ab/x", "o/ab-", "o/ab.txt",
    "o/b/c/d", "o/b-c", "o/b.c", "o/b0",
    "o/c", "o/é", "o/z", "o/日本", "o/\ufb01", "o/😀", "o/A", "o/Z", "o/0", "o/-",
    "p/abc/1", "p/abc/2", "p/abc-1", "p/abc.1", "p/abcd", "p/abc0/1",
    "q", "q-", "r/s",
]


@pytest.fixture
def tricky(provider):
    put_all(provider, TRICKY_KEYS)
    return provider


def test_list_is_in_s3_byte_order(tricky):
    listed = keys_of(tricky.list())
    assert listed == s3_sorted(TRICKY_KEYS)
    # The traps a directory-by-directory walk falls into:
    assert listed.index("o/b-c") < listed.index("o/b.c") < listed.index("o/b/c/d") < listed.index("o/b0")
    assert listed.index("p/abc-1") < listed.index("p/abc.1") < listed.index("p/abc/1") < listed.index("p/abc0/1")
    assert listed.index("o/\ufb01") < listed.index("o/😀")  # code point order, not UTF-16


@pytest.mark.parametrize("prefix", ["", "o", "o/", "o/a", "o/ab", "o/ab/", "o/b", "o/b/", "o/b/c", "p/abc",
                                    "p/abc/", "q", "r/", "o/日", "nothing/", "o/zz"])
def test_list_prefix_is_a_string_prefix_even_mid_segment(tricky, prefix):
    expected = [key for key in s3_sorted(TRICKY_KEYS) if key.startswith(prefix)]
    assert keys_of(tricky.list(prefix)) == expected


@pytest.mark.parametrize("start_after", ["o/a", "o/a-b", "o/ab/", "o/ab/x", "o/b", "o/b/", "o/b/c", "p/abc",
                                         "p/abc/", "p/abc/1", "", "zzz", "o/a/missing", "0"])
def test_list_start_after(tricky, start_after):
    everything = s3_sorted(TRICKY_KEYS)
    expected = [key for key in everything if key.encode() > start_after.encode()]
    assert keys_of(tricky.list(start_after=start_after)) == expected
    expected_o = [key for key in expected if key.startswith("o/")]
    assert keys_of(tricky.list("o/", start_after=start_after)) == expected_o


@pytest.mark.parametrize("limit", [0, 1, 2, 7, len(TRICKY_KEYS), 1000])
def test_list_limit(tricky, limit):
    assert keys_of(tricky.list(limit=limit)) == s3_sorted(TRICKY_KEYS)[:limit]


def test_list_pages_with_start_after_and_limit_cover_everything_once(tricky):
    pages, last = [], None
    while True:
        page = keys_of(tricky.list("o/", start_after=last, limit=4))
        if not page:
            break
        pages.extend(page)
        last = page[-1]
    assert pages == [key for key in s3_sorted(TRICKY_KEYS) if key.startswith("o/")]


def test_list_rows_describe_each_object(provider):
    provider.write("rows/one", b"1")
    provider.write("rows/three", b"333")
    infos = list(provider.list("rows/"))
    assert [(i.key, i.size) for i in infos] == [("rows/one", 1), ("rows/three", 3)]
    for info in infos:
        assert isinstance(info, ObjectInfo)
        assert info.last_modified.tzinfo is not None


def test_list_is_a_lazy_stream(tricky):
    stream = tricky.list()
    assert iter(stream) is stream
    assert next(stream).key == s3_sorted(TRICKY_KEYS)[0]


# -- browse ----------------------------------------------------------------------------


def expected_level(keys, prefix):
    entries = set()
    for key in keys:
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        entries.add(("prefix", prefix + rest.split("/", 1)[0] + "/") if "/" in rest else ("object", key))
    return sorted(entries, key=lambda entry: entry[1].encode())


def level_of(entries):
    shown = []
    for entry in entries:
        if isinstance(entry, PrefixInfo):
            assert entry.prefix.endswith("/")
            shown.append(("prefix", entry.prefix))
        else:
            assert isinstance(entry, ObjectInfo)
            shown.append(("object", entry.key))
    return shown


@pytest.mark.parametrize("prefix", ["", "o/", "o/a", "o/b/", "o/b/c/", "p/", "p/abc", "p/abc/", "r/", "missing/"])
def test_browse_one_level(tricky, prefix):
    assert level_of(tricky.browse(prefix)) == expected_level(TRICKY_KEYS, prefix)


def test_browse_root_shows_top_level_prefixes_and_objects(tricky):
    assert level_of(tricky.browse("")) == [
        ("prefix", "o/"), ("prefix", "p/"), ("object", "q"), ("object", "q-"), ("prefix", "r/")]


def test_browse_start_after_skips_entries_up_to_and_including_it(tricky):
    level = expected_level(TRICKY_KEYS, "o/")
    for start_after in ("o/a-b", "o/ab/", "o/b-c", "o/b/", "o/c"):
        expected = [entry for entry in level if entry[1].encode() > start_after.encode()]
        assert level_of(tricky.browse("o/", start_after=start_after)) == expected


def test_browse_object_rows_carry_size(provider):
    provider.write("lvl/file.txt", b"12345")
    provider.write("lvl/sub/deeper/x", b"")
    entries = list(provider.browse("lvl/"))
    assert level_of(entries) == [("object", "lvl/file.txt"), ("prefix", "lvl/sub/")]
    assert entries[0].size == 5


# -- delete ----------------------------------------------------------------------------


def test_delete_removes_bytes_metadata_and_listing(provider):
    provider.write("del/a", b"a")
    provider.write("del/b", b"b")
    provider.delete("del/a")
    assert not provider.exists("del/a")
    with pytest.raises(NotFound):
        provider.metadata("del/a")
    assert keys_of(provider.list("del/")) == ["del/b"]
    assert provider.read("del/b") == b"b"


def test_delete_of_a_missing_key_succeeds_silently(provider):
    provider.delete("del/never-existed")
    provider.delete("del/deeper/never/existed")
    provider.write("del/x", b"x")
    provider.delete("del/x")
    provider.delete("del/x")


def test_deleting_the_last_object_under_a_prefix_removes_the_prefix(provider):
    provider.write("gone/sub/only", b"x")
    provider.write("gone/keep", b"k")
    provider.delete("gone/sub/only")
    assert level_of(provider.browse("gone/")) == [("object", "gone/keep")]
    assert level_of(provider.browse("")) == [("prefix", "gone/")]


def test_delete_of_a_prefix_name_deletes_nothing(provider):
    provider.write("pre/fix/child", b"c")
    provider.delete("pre/fix")
    assert provider.read("pre/fix/child") == b"c"


# -- missing and invalid keys ----------------------------------------------------------


@pytest.mark.parametrize("call", ["read", "open", "stat", "metadata"])
def test_missing_keys_raise_not_found(provider, call):
    provider.write("present/child", b"x")
    for key in ("absent", "present/absent", "present"):  # a prefix is not an object
        with pytest.raises(NotFound) as caught:
            getattr(provider, call)(key)
        assert isinstance(caught.value, FileNotFoundError)
        assert key in str(caught.value)
    assert not provider.exists("absent")
    assert not provider.exists("present")


BAD_KEYS = ["", "/abs", "a//b", "a/", "a/../b", "..", "a\\b", "a\x00b", "a\x07b", "x.meta.json",
            "a/b.meta.json", "_factflow/executions/e.json", "k" * 1025]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_refused_everywhere(provider, key):
    with pytest.raises(InvalidKey):
        provider.write(key, b"x")
    for call in ("read", "open", "stat", "metadata", "exists", "delete"):
        with pytest.raises(InvalidKey):
            getattr(provider, call)(key)
    assert list(provider.list()) == []


@pytest.mark.parametrize("prefix", ["/", "a//", "../", "a\\", "_factflow/", "_factflow"])
def test_invalid_prefixes_are_refused(provider, prefix):
    with pytest.raises(InvalidKey):
        list(provider.list(prefix))
    with pytest.raises(InvalidKey):
        list(provider.browse(prefix))


def test_longest_valid_key_round_trips(provider):
    key = "/".join(["s" * 100] * 10) + "/" + "t" * 14  # exactly 1024 bytes
    assert len(key.encode()) == 1024
    provider.write(key, b"long")
    assert provider.read(key) == b"long"
    assert keys_of(provider.list()) == [key]


# -- the reserved prefix ---------------------------------------------------------------


def test_reserved_records_are_never_listed(provider):
    provider.write("visible/object", b"v")
    provider.write("_factflowish/object", b"w")  # looks alike but is not reserved
    provider.write_execution("e1", {"execution_id": "e1", "status": "running"})
    provider.put_record("jobs/j1.json", b"{}")
    assert keys_of(provider.list()) == ["_factflowish/object", "visible/object"]
    assert keys_of(provider.list("_")) == ["_factflowish/object"]
    assert keys_of(provider.list("_factflowi")) == ["_factflowish/object"]
    assert level_of(provider.browse("")) == [("prefix", "_factflowish/"), ("prefix", "visible/")]
    assert level_of(provider.browse("_")) == [("prefix", "_factflowish/")]


def test_records_round_trip(provider):
    assert provider.list_records("jobs/") is not None
    assert list(provider.list_records("jobs/")) == []
    provider.put_record("jobs/b.json", b'{"b": 1}')
    provider.put_record("jobs/a.json", io.BytesIO(b'{"a": 1}'))
    provider.put_record("other/c.json", b"c")
    with provider.open_record("jobs/a.json") as body:
        assert body.read() == b'{"a": 1}'
    assert list(provider.list_records("jobs/")) == ["jobs/a.json", "jobs/b.json"]
    provider.put_record("jobs/a.json", b"replaced")
    with provider.open_record("jobs/a.json") as body:
        assert body.read() == b"replaced"
    provider.delete_record("jobs/a.json")
    provider.delete_record("jobs/a.json")  # already gone: silent
    with pytest.raises(NotFound):
        provider.open_record("jobs/a.json")
    assert list(provider.list_records("jobs/")) == ["jobs/b.json"]
    assert keys_of(provider.list()) == []


# -- execution records -----------------------------------------------------------------


def test_execution_record_read_and_write(provider):
    assert provider.read_execution("e-missing") is None
    record = {"execution_id": "e1", "status": "running", "started_at": "2024-05-01T10:00:00.000Z",
              "extra": {"host": "worker-3"}}
    provider.write_execution("e1", record)
    assert provider.read_execution("e1") == record
    provider.write_execution("e1", {**record, "status": "completed"})
    assert provider.read_execution("e1")["status"] == "completed"


def test_set_status_runs_an_execution_through_its_lifecycle(provider):
    started = executions.set_status(provider, "exec-1", "running")
    assert started["execution_id"] == "exec-1"
    assert started["status"] == "running"
    assert started["finished_at"] is None
    parse_time(started["started_at"])
    provider.write("executions/exec-1/r/s/m1", b"1")
    provider.write("executions/exec-1/r/s/m2", b"2")
    provider.write("executions/exec-10/r/s/m1", b"not mine")  # a prefix-sharing neighbour
    finished = executions.set_status(provider, "exec-1", "failed")
    assert finished["status"] == "failed"
    assert finished["started_at"] == started["started_at"]
    assert parse_time(finished["finished_at"]) >= parse_time(started["started_at"])
    assert finished["object_count"] == 2
    assert executions.get_execution(provider, "exec-1") == finished
    assert executions.is_terminal(finished)
    assert keys_of(provider.list("executions/exec-1/")) == ["executions/exec-1/r/s/m1", "executions/exec-1/r/s/m2"]


def test_finishing_an_unknown_execution_creates_its_record(provider):
    record = executions.set_status(provider, "late", "completed")
    assert record["status"] == "completed"
    assert record["object_count"] == 0
    assert provider.read_execution("late") == record


@pytest.mark.parametrize("status", ["done", "", "RUNNING"])
def test_unknown_status_is_refused(provider, status):
    with pytest.raises(BadRequest):
        executions.set_status(provider, "e1", status)
    assert provider.read_execution("e1") is None


@pytest.mark.parametrize("execution_id", ["", "a/b", "..", "bad\nid", "x.meta"])
def test_invalid_execution_ids_are_refused(provider, execution_id):
    with pytest.raises(InvalidKey):
        executions.set_status(provider, execution_id, "running")
    with pytest.raises(InvalidKey):
        executions.get_execution(provider, execution_id)


def test_execution_ids_with_dots_and_dashes(provider):
    for execution_id in ("2024-05-01.run-3", "x.meta-data", "ünï"):
        assert executions.set_status(provider, execution_id, "running")["execution_id"] == execution_id
    assert sorted(r["execution_id"] for r in executions.list_executions(provider)) == [
        "2024-05-01.run-3", "x.meta-data", "ünï"]


def test_get_execution_of_an_unknown_id_is_not_found(provider):
    with pytest.raises(NotFound):
        executions.get_execution(provider, "nobody")


def test_list_executions_newest_first(provider):
    assert executions.list_executions(provider) == []
    for execution_id, started in (("old", "2024-01-01T00:00:00.000Z"), ("new", "2024-03-01T00:00:00.000Z"),
                                  ("mid", "2024-02-01T00:00:00.000Z")):
        provider.write_execution(execution_id, {"execution_id": execution_id, "status": "completed",
                                                "started_at": started})
    provider.put_record("jobs/not-an-execution.json", b"{}")
    assert [r["execution_id"] for r in executions.list_executions(provider)] == ["new", "mid", "old"]


def test_a_provider_missing_a_primitive_cannot_be_built():
    # The derived methods (read, exists, delete_many...) call these; a provider without
    # one fails at construction, not on the first call that needs it.
    from factflow_storage.protocol import BaseProvider

    class Partial(BaseProvider):
        def stat(self, key):
            raise NotImplementedError

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]


def test_providers_keep_primitives_and_the_store_gives_them_meaning(storage):
    # Execution records and the lineage index are the domain layer's: a provider's own
    # write indexes nothing; the same write through the store the registry hands out does.
    from factflow_storage.lineage_index import REFS

    store = storage.open()
    try:
        primitives = store.primitives
        assert not any(hasattr(primitives, name) for name in ("read_execution", "write_execution"))
        parent = "executions/p/r/s/m1"
        primitives.write("executions/c/r/s/raw", b"x", {"lineage": [parent]})
        assert list(store.list_records(f"{REFS}p/")) == []
        store.write("executions/c/r/s/kept", b"x", {"lineage": [parent]})
        assert len(list(store.list_records(f"{REFS}p/c/"))) == 1
        store.write_execution("c", {"execution_id": "c", "status": "running"})
        assert store.read_execution("c") == {"execution_id": "c", "status": "running"}
    finally:
        store.close()
