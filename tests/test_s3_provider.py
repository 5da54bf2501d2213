"""What only the S3 provider does, against the real server the suite starts: metadata in
user metadata or a companion record, multipart streams, URI prefixes, missing buckets,
objects other tools wrote, and one request per call."""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from factflow_storage import create_storage_provider
from factflow_storage.errors import BucketMissing, ConfigError, InvalidKey, NotFound
from factflow_storage.protocol import PrefixInfo
from factflow_storage.providers.s3_transfer import PART_SIZE, split_endpoint

pytestmark = pytest.mark.s3


class OnlyRead:
    """A pipe-like source: read() only, short reads."""

    def __init__(self, data: bytes, chunk: int = 1 << 20):
        self._data, self._pos, self._chunk = data, 0, chunk

    def read(self, size: int = -1) -> bytes:
        size = self._chunk if size is None or size < 0 else min(size, self._chunk)
        chunk = self._data[self._pos:self._pos + size]
        self._pos += len(chunk)
        return chunk


def user_metadata_headers(s3_server, bucket: str, name: str) -> dict[str, str]:
    found = s3_server.client().stat_object(bucket_name=bucket, object_name=name)
    return {k.lower(): v for k, v in found.metadata.items() if k.lower().startswith("x-amz-meta-")}


def user_metadata_bytes(headers: dict[str, str]) -> int:
    # AWS counts the UTF-8 bytes of each name (without x-amz-meta-) and value.
    return sum(len(k[len("x-amz-meta-"):].encode()) + len(v.encode()) for k, v in headers.items())


def raw_names(s3_server, bucket: str) -> list[str]:
    return [o.object_name for o in s3_server.client().list_objects(bucket_name=bucket, recursive=True)]


# -- metadata: inline or companion ---------------------------------------------------------


def test_a_10_kib_metadata_blob_round_trips_through_a_companion_record(s3_server, bucket, s3):
    blob = {"lineage": [f"executions/e1/r/s/parent-{n:04d}" for n in range(200)],
            "notes": "naïve 日本語 ✓ " * 200, "nested": {"a": [1, 2.5, None, True]}}
    assert len(orjson.dumps(blob)) > 10 * 1024
    stored = s3.write("meta/big.txt", b"body", blob)

    assert s3.metadata("meta/big.txt") == stored
    with s3.open("meta/big.txt") as stream:
        assert stream.metadata == stored
        assert stream.read() == b"body"
    assert stored["lineage"] == blob["lineage"] and stored["notes"] == blob["notes"]

    headers = user_metadata_headers(s3_server, bucket, "meta/big.txt")
    assert "x-amz-meta-factflow" not in headers
    assert user_metadata_bytes(headers) <= 2048
    assert [name for name in raw_names(s3_server, bucket) if name.startswith("_factflow/metadata/")] != []
    assert [info.key for info in s3.list()] == ["meta/big.txt"]


def test_rewrites_and_delete_leave_no_stale_companion_records(s3_server, bucket, s3):
    big = {"pad": "p" * 4000}
    s3.write("meta/k", b"1", big)
    s3.write("meta/k", b"2", {**big, "v": 2})
    # The replaced record stays for the grace period: a concurrent write still uploading
    # may be about to point at a record like it.
    assert len(list(s3.list_records("metadata/"))) == 2
    assert s3.metadata("meta/k")["v"] == 2
    s3.write("meta/k", b"3", {"small": True})
    assert s3.metadata("meta/k")["small"] is True
    s3.delete("meta/k")
    assert list(s3.fsck(repair=True, grace=0))
    assert list(s3.list_records("metadata/")) == []
    assert raw_names(s3_server, bucket) == []


@pytest.mark.parametrize("text_bytes", [1000, 1400, 1500, 1520, 1540, 1600, 2100])
def test_user_metadata_stays_within_2_kib_at_the_edge(s3_server, bucket, s3, text_bytes):
    blob = {"text": "a" * text_bytes}
    stored = s3.write("edge/k", b"x", blob)
    headers = user_metadata_headers(s3_server, bucket, "edge/k")
    assert user_metadata_bytes(headers) <= 2048
    assert s3.metadata("edge/k") == stored


def test_inline_metadata_is_base64_of_the_json_blob(s3_server, bucket, s3):
    stored = s3.write("meta/small.json", b"{}", {"adapter": "é✓"})
    headers = user_metadata_headers(s3_server, bucket, "meta/small.json")
    assert sorted(headers) == ["x-amz-meta-checksum", "x-amz-meta-content-type", "x-amz-meta-factflow"]
    decoded = orjson.loads(base64.b64decode(headers["x-amz-meta-factflow"]))
    assert decoded.pop("_factflow_md5") == hashlib.md5(b"{}").hexdigest()
    assert decoded == stored


# -- streams ---------------------------------------------------------------------------------


def test_a_stream_longer_than_a_part_goes_up_in_parts_with_its_checksum(s3_server, bucket, s3):
    data = hashlib.sha256(b"seed").digest() * ((2 * PART_SIZE + 12345) // 32)
    stored = s3.write("big/stream.bin", OnlyRead(data), {"kind": "stream"})
    assert stored["content_length"] == len(data)
    assert stored["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert stored["content_type"] == "application/octet-stream"
    assert s3.metadata("big/stream.bin") == stored
    assert s3_server.client().stat_object(bucket_name=bucket, object_name="big/stream.bin").etag.endswith("-3")
    with s3.open("big/stream.bin", start=PART_SIZE - 5, length=10) as stream:
        assert stream.read() == data[PART_SIZE - 5:PART_SIZE + 5]
    assert s3.read("big/stream.bin") == data


def test_readers_never_see_the_metadata_of_another_version(s3):
    pad = "m" * 3000  # spilled: the blob lives in a companion record
    s3.write("race/k", b"0", {"n": 0, "pad": pad})
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            for n in range(1, 40):
                s3.write("race/k", str(n).encode(), {"n": n, "pad": pad})
        except BaseException as err:
            failures.append(err)
        finally:
            stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not stop.is_set() or reads == 0:
        with s3.open("race/k") as stream:
            data = stream.read()
            assert stream.metadata["n"] == int(data)
            assert stream.metadata["checksum"] == "sha256:" + hashlib.sha256(data).hexdigest()
        reads += 1
    thread.join()
    assert not failures
    assert s3.metadata("race/k")["n"] == 39
    assert list(s3.fsck(repair=True, grace=0))  # replaced records outlive the grace period only
    assert len(list(s3.list_records("metadata/"))) == 1


# -- listings past one page ----------------------------------------------------------------


def test_listings_across_pages_keep_s3_order_and_skip_records(s3_server, bucket, s3):
    flat = [f"flat/k{n:05d}" for n in range(1300)]
    nested = [f"flat/k{n:05d}-dir/x" for n in range(0, 1300, 7)]  # prefixes between objects
    records = [f"_factflow/jobs/j{n:05d}.json" for n in range(1100)]
    around = ["Zebra/first", "zebra/last"]  # 'Z' < '_factflow/' < 'z'
    client = s3_server.client()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda name: client.put_object(bucket_name=bucket, object_name=name, data=io.BytesIO(b"."),
                                                     length=1), flat + nested + records + around))
    everything = sorted(flat + nested + around, key=lambda key: key.encode())
    assert [info.key for info in s3.list()] == everything
    assert [info.key for info in s3.list("flat/", start_after="flat/k00500")] == \
        [key for key in everything if key.startswith("flat/") and key > "flat/k00500"]
    assert [info.key for info in s3.list(limit=1001)] == everything[:1001]
    level = sorted(flat + sorted({key.rsplit("/", 1)[0] + "/" for key in nested}), key=lambda key: key.encode())
    shown = [entry.prefix if isinstance(entry, PrefixInfo) else entry.key for entry in s3.browse("flat/")]
    assert shown == level
    assert [getattr(entry, "prefix", None) or entry.key for entry in s3.browse("")] == ["Zebra/", "flat/", "zebra/"]
    assert len(list(s3.list_records("jobs/"))) == 1100


# -- URI prefix ------------------------------------------------------------------------------


def test_a_uri_prefix_holds_objects_and_records(s3_server, bucket):
    team = create_storage_provider(f"minio://{bucket}/team-a", s3_server.options())
    team.write("executions/e1/r/s/m1", b"1")
    team.write_execution("e1", {"execution_id": "e1", "status": "running"})
    s3_server.client().put_object(bucket_name=bucket, object_name="elsewhere/x", data=io.BytesIO(b"x"), length=1)

    names = raw_names(s3_server, bucket)
    assert "team-a/executions/e1/r/s/m1" in names
    assert "team-a/_factflow/executions/e1.json" in names
    assert all(name.startswith("team-a/") or name == "elsewhere/x" for name in names)
    assert [info.key for info in team.list()] == ["executions/e1/r/s/m1"]
    assert [entry.prefix for entry in team.browse("")] == ["executions/"]
    assert team.read_execution("e1")["status"] == "running"
    assert list(team.list_records("executions/")) == ["executions/e1.json"]


def test_the_uri_prefix_counts_toward_the_1024_byte_key_limit(s3_server, bucket):
    team = create_storage_provider(f"minio://{bucket}/team-a", s3_server.options())
    room = 1024 - len("team-a/")
    fits = "k/" + "a" * (room - 2)
    team.write(fits, b"ok")
    assert team.read(fits) == b"ok"
    with pytest.raises(InvalidKey, match="1024"):
        team.write(fits + "b", b"too long")


# -- missing buckets ---------------------------------------------------------------------------


def test_a_missing_bucket_is_a_clear_error(s3_server):
    missing = create_storage_provider("minio://ff-no-such-bucket", s3_server.options())
    for call in (lambda: missing.write("k", b"x"), lambda: missing.read("k"), lambda: missing.stat("k"),
                 lambda: missing.exists("k"), lambda: list(missing.list()), lambda: list(missing.browse()),
                 missing.check):
        with pytest.raises(BucketMissing) as caught:
            call()
        assert "ff-no-such-bucket" in str(caught.value)
        assert "FACTFLOW_MINIO_CREATE_BUCKET" in str(caught.value)


def test_create_bucket_reads_a_missing_bucket_as_empty_and_creates_it_on_write(s3_server):
    name = "ff-created-" + s3_server.new_bucket()[3:15]
    fresh = create_storage_provider(f"minio://{name}", {**s3_server.options(), "create_bucket": True})
    fresh.check()
    assert list(fresh.list()) == [] and list(fresh.browse()) == []
    assert not fresh.exists("k")
    with pytest.raises(NotFound):
        fresh.read("k")
    fresh.delete("k")
    fresh.write("k", b"created")
    assert s3_server.client().bucket_exists(bucket_name=name)
    assert fresh.read("k") == b"created"


# -- objects other tools wrote -----------------------------------------------------------------


def test_objects_without_factflow_metadata_show_what_s3_knows(s3_server, bucket, s3):
    s3_server.client().put_object(bucket_name=bucket, object_name="foreign/data.csv", data=io.BytesIO(b"a,b\n"),
                                  length=4, content_type="text/csv", metadata={"origin": "elsewhere"})
    assert [info.key for info in s3.list()] == ["foreign/data.csv"]
    assert s3.read("foreign/data.csv") == b"a,b\n"
    blob = s3.metadata("foreign/data.csv")
    assert blob["key"] == "foreign/data.csv"
    assert blob["content_type"] == "text/csv"
    assert blob["content_length"] == 4
    assert blob["etag"] == hashlib.md5(b"a,b\n").hexdigest()
    assert blob["created_at"].endswith("Z")
    assert blob["user_metadata"] == {"origin": "elsewhere"}
    assert "checksum" not in blob


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint, secure, expected", [
    ("127.0.0.1:9000", None, ("127.0.0.1:9000", False)),
    ("localhost:9000", None, ("localhost:9000", False)),
    ("[::1]:9000", None, ("[::1]:9000", False)),
    ("s3.example.com", None, ("s3.example.com", True)),
    ("minio.internal:9000", False, ("minio.internal:9000", False)),
    ("http://minio.internal:9000/", None, ("minio.internal:9000", False)),
    ("https://127.0.0.1:9000", None, ("127.0.0.1:9000", True)),
])
def test_endpoint_and_tls_default(endpoint, secure, expected):
    assert split_endpoint(endpoint, secure) == expected


def test_settings_come_from_the_environment_when_opened_from_python(s3_server, bucket, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no ./factflow.toml
    monkeypatch.delenv("FACTFLOW_CONFIG", raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    provider = create_storage_provider(f"minio://{bucket}")  # as a pipeline would call it
    provider.write("from/env", b"ok")
    assert provider.read("from/env") == b"ok"
    monkeypatch.delenv("FACTFLOW_MINIO_ENDPOINT")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="FACTFLOW_MINIO_ENDPOINT"):
        create_storage_provider(f"minio://{bucket}")


# -- requests --------------------------------------------------------------------------------


def count_requests(provider, action) -> int:
    """Requests through minio-py, and whole-object reads on the provider's own sockets."""
    trace = io.StringIO()
    sent = provider._gets.sent if provider._gets else 0
    provider._client.trace_on(trace)
    try:
        action()
    finally:
        provider._client.trace_off()
    own = (provider._gets.sent if provider._gets else 0) - sent
    return trace.getvalue().count("---------START-HTTP---------") + own


def test_a_fresh_provider_costs_one_request_per_call(s3_server, bucket):
    create_storage_provider(f"minio://{bucket}", s3_server.options()).write("one/k.txt", b"x")
    for action in (lambda p: p.stat("one/k.txt"), lambda p: p.read("one/k.txt"), lambda p: list(p.list()),
                   lambda p: p.write("one/other.txt", b"y")):
        fresh = create_storage_provider(f"minio://{bucket}", s3_server.options())
        assert count_requests(fresh, lambda action=action, fresh=fresh: action(fresh)) == 1


@pytest.mark.parametrize("key", [" ", "\u3000"])
def test_a_key_of_white_space_only_is_refused_clearly(s3, key):
    # S3 takes such a name, but the minio client refuses it with a bare ValueError (a 500
    # through the server): the provider says why instead, for every operation.
    for call in (lambda: s3.metadata(key), lambda: s3.write(key, b"x"), lambda: s3.open(key), lambda: s3.delete(key)):
        with pytest.raises(InvalidKey, match="white space"):
            call()
