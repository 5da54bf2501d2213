"""Write benchmark: a pipeline's small writes through ``open_storage().write`` against a bare
loop doing the same durable work, in one process, in one run.

    python3 bench/write_bench.py [--writes 500] [--size 2048] [--repeat 3] [--skip-s3] [--upstream]

Each write stores ``--size`` bytes under ``executions/<id>/route/stage/msg-N.json`` with
``lineage`` (the previous message's key, in the same execution, as a stage's output names
its input; parents in other executions add an index record per write) and ``config_hash``,
one after the other from one thread, as a stage writes.

- fs-write-small: the filesystem provider (object and sidecar each written to a temp file,
  fsynced and renamed under the key's lock, then the directory fsynced) vs a bare loop of
  the same system calls: object and sidecar (its JSON holding the sha256) each
  temp + fsync + rename, then one directory fsync.
- fs-write-batch: the same writes in one ``storage.batch()`` (the directory's fsync once,
  at the block's end) vs the bare loop with one directory fsync at its end.
- s3-write-small: the S3 provider (metadata headers, the write journal's marker on servers
  without bucket notifications) vs a bare ``put_object`` of the same bytes with minio-py,
  on the server ``tests/s3server.py`` starts.
- fs-write-upstream, s3-write-upstream (with ``--upstream``): as fs-write-small and
  s3-write-small, but each write's lineage also names an object of an upstream execution
  (a replay reusing an upstream stage's output), so every write pays the whole deletion
  handshake of ``factflow_storage.lineage_index``: a reference and a marker put, and the
  upstream execution's state read, before the commit. Same bare loops.

Every write also reads its own execution's state after the commit (the handshake's other
side); deletion claims cost writers nothing (only deleters take them).

Sides alternate, each into a fresh directory or prefix; figures are medians of the whole
loop's wall time. Target: at most 1.5x the bare loop.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))

from harness import REPEAT, Row, alternate, print_rows, wanted  # noqa: E402

ROWS = ("fs-write-small", "fs-write-batch", "s3-write-small")
# Only from this script (``--upstream``): not rows of the performance table.
UPSTREAM_ROWS = ("fs-write-upstream", "s3-write-upstream")
TARGET = 1.5
CONFIG_HASH = "sha256:" + "ab" * 32


def payloads(writes: int, size: int) -> list[bytes]:
    return [(b'{"n": %d, "text": "' % n).ljust(size - 2, b"x") + b'"}' for n in range(writes)]


def factflow_loop(uri: str, execution_id: str, data: list[bytes], *, batch: bool = False,
                  upstream: bool = False) -> float:
    """Wall seconds of the writes through the public API (opened before the clock starts);
    with ``upstream``, each write also names an object of another execution."""
    from factflow_storage import open_storage

    with open_storage(uri) as storage:
        keys = [f"executions/{execution_id}/route/stage/msg-{n:06d}.json" for n in range(len(data))]
        foreign = []
        if upstream:
            foreign = [f"executions/up-{execution_id}/route/fetch/msg-000000.json"]
            storage.write(foreign[0], b"{}", lineage=[], config_hash=CONFIG_HASH)
        started = time.perf_counter()
        if batch:
            with storage.batch() as writer:
                for n, (key, body) in enumerate(zip(keys, data, strict=True)):
                    writer.write(key, body, lineage=[keys[n - 1]] if n else [], config_hash=CONFIG_HASH)
        else:
            for n, (key, body) in enumerate(zip(keys, data, strict=True)):
                storage.write(key, body, lineage=([keys[n - 1]] if n else []) + foreign, config_hash=CONFIG_HASH)
        return time.perf_counter() - started


def factflow_upstream_loop(uri: str, execution_id: str, data: list[bytes]) -> float:
    return factflow_loop(uri, execution_id, data, upstream=True)


def factflow_batch_loop(uri: str, execution_id: str, data: list[bytes]) -> float:
    return factflow_loop(uri, execution_id, data, batch=True)


def _durable_file(dir_fd: int, name: str, body: bytes) -> None:
    temp = f".{name}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def bare_fs_loop(root: str, execution_id: str, data: list[bytes], *, batch: bool = False) -> float:
    """The same durable work without the library: object and sidecar, directory fsync
    (after each write, or once at the end with ``batch``)."""
    directory = os.path.join(root, "executions", execution_id, "route", "stage")
    os.makedirs(directory)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        started = time.perf_counter()
        for n, body in enumerate(data):
            name = f"msg-{n:06d}.json"
            sidecar = orjson.dumps({"key": name, "content_length": len(body), "config_hash": CONFIG_HASH,
                                    "checksum": "sha256:" + hashlib.sha256(body).hexdigest()})
            _durable_file(dir_fd, name, body)
            _durable_file(dir_fd, name + ".meta.json", sidecar)
            if not batch:
                os.fsync(dir_fd)
        if batch:
            os.fsync(dir_fd)
        return time.perf_counter() - started
    finally:
        os.close(dir_fd)


def bare_fs_batch_loop(root: str, execution_id: str, data: list[bytes]) -> float:
    return bare_fs_loop(root, execution_id, data, batch=True)


def fs_row(writes: int, size: int, repeat: int, *, batch: bool = False, upstream: bool = False) -> Row:
    data = payloads(writes, size)
    scratch = tempfile.mkdtemp(prefix="factflow-write-bench-")
    runs = iter(range(10_000))
    try:
        def fresh(loop: Callable[[str, str, list[bytes]], float], uri: bool) -> Callable[[], float]:
            def run() -> float:
                root = os.path.join(scratch, f"run-{next(runs)}")
                try:
                    return loop(f"file://{root}" if uri else root, "bench", data)
                finally:
                    shutil.rmtree(root, ignore_errors=True)
            return run

        ours_loop, bare_loop = (factflow_batch_loop, bare_fs_batch_loop) if batch else (
            factflow_upstream_loop if upstream else factflow_loop, bare_fs_loop)
        fresh(ours_loop, True)()  # imports and first directory creation, unmeasured
        ours, theirs = alternate(repeat, fresh(ours_loop, True), fresh(bare_loop, False))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if upstream:
        return Row("fs-write-upstream", f"{writes} writes of {size // 1024} KiB + lineage into another execution, fs",
                   "bare temp+fsync+rename x2, dir fsync", ours, theirs, "<=", TARGET, runs=repeat)
    if batch:
        return Row("fs-write-batch", f"{writes} writes of {size // 1024} KiB + lineage, fs, one batch",
                   "bare temp+fsync+rename x2, one dir fsync", ours, theirs, "<=", TARGET, runs=repeat)
    return Row("fs-write-small", f"{writes} writes of {size // 1024} KiB + lineage, filesystem",
               "bare temp+fsync+rename x2, dir fsync", ours, theirs, "<=", TARGET, runs=repeat)


def s3_row(writes: int, size: int, repeat: int, *, upstream: bool = False) -> Row:
    import s3server

    data = payloads(writes, size)
    runs = iter(range(10_000))
    with s3server.start() as server:
        os.environ.update(server.env())
        bucket = server.new_bucket()
        client = server.client()

        def ours() -> float:
            return factflow_loop(f"minio://{bucket}", f"bench-{next(runs)}", data, upstream=upstream)

        def bare() -> float:
            prefix = f"bare-{next(runs)}/"
            started = time.perf_counter()
            for n, body in enumerate(data):
                client.put_object(bucket_name=bucket, object_name=f"{prefix}msg-{n:06d}.json", data=io.BytesIO(body),
                                  length=len(body), content_type="application/json")
            return time.perf_counter() - started

        ours(), bare()  # connections, imports, the server's first requests: unmeasured
        mine, theirs = alternate(repeat, ours, bare)
    if upstream:
        return Row("s3-write-upstream", f"{writes} writes of {size // 1024} KiB + lineage into another execution, S3",
                   "bare minio put_object", mine, theirs, "<=", TARGET, runs=repeat)
    return Row("s3-write-small", f"{writes} writes of {size // 1024} KiB + lineage, S3",
               "bare minio put_object", mine, theirs, "<=", TARGET, runs=repeat)


def rows(only: set[str] | None = None, quick: bool = False, repeat: int = REPEAT,
         writes: int | None = None, size: int = 2048) -> list[Row]:
    ids = wanted(ROWS + UPSTREAM_ROWS if only is not None else ROWS, only)
    writes = writes or (50 if quick else 500)
    result = []
    if "fs-write-small" in ids:
        result.append(fs_row(writes, size, repeat))
    if "fs-write-batch" in ids:
        result.append(fs_row(writes, size, repeat, batch=True))
    if "s3-write-small" in ids:
        result.append(s3_row(writes, size, repeat))
    if "fs-write-upstream" in ids:
        result.append(fs_row(writes, size, repeat, upstream=True))
    if "s3-write-upstream" in ids:
        result.append(s3_row(writes, size, repeat, upstream=True))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--size", type=int, default=2048, help="bytes per object")
    parser.add_argument("--repeat", type=int, default=REPEAT)
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--upstream", action="store_true", help="also the rows naming an upstream execution")
    args = parser.parse_args()
    only = set(ROWS + UPSTREAM_ROWS if args.upstream else ROWS)
    if args.skip_s3:
        only = {row for row in only if not row.startswith("s3-")}
    print_rows(rows(only, repeat=args.repeat, writes=args.writes, size=args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
