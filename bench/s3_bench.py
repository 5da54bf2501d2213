"""S3 benchmark: factflow against rclone and the aws cli on the same S3 server, one run.

    python3 bench/s3_bench.py [--keys 20000] [--small 1000] [--large-mib 500] [--repeat 3] [--table]

Starts its own server (``tests/s3server.py``: radosgw on memstore, or minio when on PATH),
fills one bucket, then times, as a user would run them (every tool a fresh process, its
own defaults for concurrency), the median of ``--repeat`` runs:

- listing N keys: ``factflow storage list --output json`` / ``rclone ls`` / ``aws s3 ls
  --recursive``, output to /dev/null;
- getting many small objects: ``factflow storage download --no-metadata`` / ``rclone copy``
  / ``aws s3 cp --recursive`` into a fresh directory (and, for reference, the provider's
  ``read`` from 16 threads in one process);
- getting one large object to a file: ``factflow storage get > FILE`` / ``rclone copyto``
  / ``rclone cat > FILE`` / ``aws s3 cp``.

Ratios are factflow's time over the tool's (below 1 is faster). Targets: listing and the
large get within 1.25x of rclone. The machine's load moves every figure: compare ratios
from one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import s3server  # noqa: E402

from harness import REPEAT, Row, alternate, clean_env, print_rows, wanted  # noqa: E402

from factflow_storage import create_storage_provider  # noqa: E402

FACTFLOW = [sys.executable, "-m", "factflow_storage"]
ROWS = ("s3-get-4k", "s3-list")
TARGET = 1.25
SMALL_EXECUTION = "bench-small"


def populate(server: s3server.S3Server, bucket: str, keys: int, small: int, large_mib: int) -> None:
    client = server.client()

    def put(name: str, data: bytes) -> None:
        client.put_object(bucket_name=bucket, object_name=name, data=io.BytesIO(data), length=len(data))

    started = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda n: put(f"listing/k-{n:06d}.json", b'{"n": %d}' % n), range(keys)))
    provider = create_storage_provider(f"minio://{bucket}", server.options())
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: provider.write(f"executions/{SMALL_EXECUTION}/route/stage/obj-{n:05d}.bin",
                                               os.urandom(4096)), range(small)))
    provider.write("large/blob.bin", _RandomStream(large_mib * 1024 * 1024))
    print(f"filled in {time.monotonic() - started:.1f} s: {keys} keys, {small} small objects of 4 KiB, "
          f"one object of {large_mib} MiB", flush=True)


class _RandomStream:
    def __init__(self, size: int):
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


def timed(argv: list[str], env: dict[str, str], *, stdout=subprocess.DEVNULL, before=None) -> float:
    if before:
        before()
    started = time.monotonic()
    done = subprocess.run(argv, env=env, stdout=stdout, stderr=subprocess.PIPE)
    elapsed = time.monotonic() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(argv[:4])} failed: {done.stderr.decode()[-1000:]}")
    return elapsed


def median_of(repeat: int, run) -> float:
    return statistics.median(run() for _ in range(repeat))


def fresh_dir(path: str):
    def reset() -> None:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
    return reset


def to_file(argv: list[str], env: dict[str, str], path: str) -> float:
    with open(path, "wb") as handle:
        return timed(argv, env, stdout=handle)


def report(title: str, rows: dict[str, float], *, target: bool, reference: str = "rclone") -> None:
    factflow = rows["factflow"]
    print(f"\n{title}")
    for name, seconds in rows.items():
        ratio = "" if name == "factflow" else f"   factflow/{name} = {factflow / seconds:.2f}"
        print(f"  {name:<28} {seconds:8.3f} s{ratio}")
    if target:
        verdict = "meets" if factflow / rows[reference] <= TARGET else "MISSES"
        print(f"  -> {verdict} the target of {TARGET}x {reference}")


def rows(only: set[str] | None = None, quick: bool = False, repeat: int = REPEAT,
         keys: int | None = None) -> list[Row]:
    ids = wanted(ROWS, only)
    if not ids:
        return []
    keys = keys or (500 if quick else 20_000)
    result = []
    with s3server.start() as server:
        bucket = server.new_bucket()
        provider = create_storage_provider(f"minio://{bucket}", server.options())
        ff_env = clean_env(**server.env(), FACTFLOW_STORAGE_URI=f"minio://{bucket}")
        tools = server.tool_env()
        remote = f"{s3server.RCLONE_REMOTE}:{bucket}"
        if "s3-get-4k" in ids:
            provider.write("small/obj.bin", os.urandom(4096))
            get = [*FACTFLOW, "storage", "get", "small/obj.bin"]
            cat = ["rclone", "cat", f"{remote}/small/obj.bin"]
            timed(get, ff_env), timed(cat, tools)  # bytecode and the server's first request, unmeasured
            ours, theirs = alternate(repeat, lambda: timed(get, ff_env), lambda: timed(cat, tools))
            result.append(Row("s3-get-4k", "`get` of a 4 KiB object on S3, fresh process", "`rclone cat`",
                              ours, theirs, "<=", 1.0, runs=repeat))
        if "s3-list" in ids:
            client = server.client()
            with ThreadPoolExecutor(32) as pool:
                list(pool.map(lambda n: client.put_object(bucket_name=bucket, object_name=f"listing/k-{n:06d}.json",
                                                          data=io.BytesIO(b"{}"), length=2), range(keys)))
            listing = [*FACTFLOW, "storage", "list", "--prefix", "listing/", "--output", "json"]
            lsf = ["rclone", "lsf", "-R", f"{remote}/listing/"]
            ours, theirs = alternate(repeat, lambda: timed(listing, ff_env), lambda: timed(lsf, tools))
            result.append(Row("s3-list", f"S3 list {keys:,} keys", "`rclone lsf -R`", ours, theirs, "<=", 1.0,
                              runs=repeat))
        provider.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large-mib", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--table", action="store_true", help="print the performance table's rows only")
    args = parser.parse_args()
    if args.table:
        print_rows(rows(repeat=args.repeat, keys=args.keys))
        return 0

    print("starting the S3 server...", flush=True)
    server = s3server.start()
    work = tempfile.mkdtemp(prefix="factflow-s3-bench-")
    try:
        bucket = server.new_bucket()
        print(f"{server.kind} at {server.url}, bucket {bucket}", flush=True)
        populate(server, bucket, args.keys, args.small, args.large_mib)
        ff_env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
        ff_env.update(server.env(), FACTFLOW_STORAGE_URI=f"minio://{bucket}")
        tools = server.tool_env()
        remote = f"{s3server.RCLONE_REMOTE}:{bucket}"
        n = args.repeat

        report(f"list {args.keys} keys (median of {n})", {
            "factflow": median_of(n, lambda: timed([*FACTFLOW, "storage", "list", "--prefix", "listing/",
                                                     "--output", "json"], ff_env)),
            "rclone": median_of(n, lambda: timed(["rclone", "ls", f"{remote}/listing/"], tools)),
            "aws": median_of(n, lambda: timed(server.aws("s3", "ls", "--recursive", f"s3://{bucket}/listing/"),
                                              tools)),
        }, target=True)

        target = os.path.join(work, "small")
        provider = create_storage_provider(f"minio://{bucket}", server.options())
        small_keys = [info.key for info in provider.list(f"executions/{SMALL_EXECUTION}/")]

        def library_reads() -> float:
            started = time.monotonic()
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(provider.read, small_keys))
            return time.monotonic() - started

        report(f"get {args.small} small objects into a directory (median of {n})", {
            "factflow": median_of(n, lambda: timed([*FACTFLOW, "storage", "download", SMALL_EXECUTION, "-d", target,
                                                     "--no-metadata", "-q"], ff_env, before=fresh_dir(target))),
            "rclone": median_of(n, lambda: timed(["rclone", "copy", f"{remote}/executions/{SMALL_EXECUTION}",
                                                  target], tools, before=fresh_dir(target))),
            "aws": median_of(n, lambda: timed(server.aws("s3", "cp", "--recursive", "--quiet",
                                                         f"s3://{bucket}/executions/{SMALL_EXECUTION}", target),
                                              tools, before=fresh_dir(target))),
            "factflow library, 16 threads": median_of(n, library_reads),
        }, target=False)

        large = os.path.join(work, "large.bin")
        report(f"get one {args.large_mib} MiB object into a file (median of {n})", {
            "factflow": median_of(n, lambda: to_file([*FACTFLOW, "storage", "get", "large/blob.bin"], ff_env, large)),
            "rclone": median_of(n, lambda: timed(["rclone", "copyto", f"{remote}/large/blob.bin", large], tools,
                                                 before=lambda: os.path.exists(large) and os.unlink(large))),
            "rclone cat": median_of(n, lambda: to_file(["rclone", "cat", f"{remote}/large/blob.bin"], tools, large)),
            "aws": median_of(n, lambda: timed(server.aws("s3", "cp", "--quiet", f"s3://{bucket}/large/blob.bin",
                                                         large), tools)),
        }, target=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
