"""Execution delete benchmark: ``factflow execution delete ID --yes`` against ``rm -rf``
(filesystem) and ``rclone purge`` (S3), on the same data, in one run.

    python3 bench/delete_bench.py [--fs-objects 100000] [--s3-objects 10000] [--skip-s3]

Filesystem: an execution of N objects (files and sidecars in the provider's own format,
written directly, no fsync) is laid out twice; one copy is deleted by factflow, the other
by ``rm -rf ROOT/executions/ID``. The same is done at N/10 objects, so the peak memory of
the two sizes shows whether it grows with the execution (it should not: the listing is
streamed and deleted a chunk at a time).

S3 (a radosgw or minio started through ``tests/s3server.py``): two executions of N small
objects are written through the provider, as a pipeline writes them (so each also has its
journal marker on servers without a listen API); factflow deletes one, ``rclone purge``
the other's prefix. rclone removes only the objects under the prefix: the journal markers
it leaves behind are counted.

Each line gives wall time and peak RSS (GNU time's maximum resident set of the child).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

FACTFLOW = [sys.executable, "-m", "factflow_storage"]
GNU_TIME = "/usr/bin/time"
STAGES = [("sitemap_scraper", "web_scraper"), ("markdown_processor", "html_to_markdown"),
          ("markdown_processor", "chunker"), ("indexer", "embed"), ("indexer", "upsert")]


def build_execution(root: Path, execution_id: str, objects: int) -> int:
    """Objects and sidecars as the filesystem provider writes them; returns the bytes."""
    created = "2024-05-01T10:00:00.000Z"
    total = 0
    for number in range(objects):
        route, stage = STAGES[number % len(STAGES)]
        key = f"executions/{execution_id}/{route}/{stage}/msg-{number:06d}.json"
        path = root / key
        if number < len(STAGES):
            path.parent.mkdir(parents=True, exist_ok=True)
        data = b'{"msg": %d, "text": "%s"}' % (number, b"x" * (number % 200))
        path.write_bytes(data)
        total += len(data)
        blob = {"execution_id": execution_id, "route_id": route, "stage": stage, "msg_id": path.name,
                "content_type": "application/json", "key": key, "content_length": len(data),
                "checksum": "sha256:" + hashlib.sha256(data).hexdigest(), "created_at": created,
                "_factflow_inode": path.stat().st_ino}
        (root / (key + ".meta.json")).write_bytes(orjson.dumps(blob))
    record = {"execution_id": execution_id, "status": "completed", "started_at": created,
              "finished_at": created, "object_count": objects}
    (root / "_factflow" / "executions").mkdir(parents=True, exist_ok=True)
    (root / "_factflow" / "executions" / f"{execution_id}.json").write_bytes(orjson.dumps(record))
    return total


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in MiB) of one child; its exit status must be 0."""
    with tempfile.NamedTemporaryFile("r") as report, open(os.devnull, "wb") as sink:
        started = time.perf_counter()
        result = subprocess.run([GNU_TIME, "-f", "%M", "-o", report.name, *argv], stdout=sink,
                                stderr=subprocess.PIPE, env=env, check=False)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.decode()[-500:]}")
        peak = int(report.read().split()[-1])
    return elapsed, peak // 1024


def line(tool: str, elapsed: float, peak_mib: int, reference: float | None = None) -> str:
    ratio = f"  ({elapsed / reference:.2f}x)" if reference else ""
    return f"  {tool:<28} {elapsed:8.2f} s  {peak_mib:6d} MiB peak{ratio}"


def remaining_files(path: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


def bench_fs(objects: int, work: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    for count in (objects // 10, objects):
        root = work / f"fs-{count}"
        started = time.monotonic()
        size = build_execution(root, "big", count)
        shutil.copytree(root, work / f"fs-{count}-rm", symlinks=True)
        print(f"filesystem, one execution of {count} objects ({size} bytes; built in "
              f"{time.monotonic() - started:.1f} s):", flush=True)
        env["FACTFLOW_STORAGE_URI"] = f"file://{root}"
        ff = run_child([*FACTFLOW, "execution", "delete", "big", "--yes"], env)
        rm = run_child(["rm", "-rf", str(work / f"fs-{count}-rm" / "executions" / "big")], env)
        print(line("rm -rf", *rm), flush=True)
        print(line("factflow execution delete", *ff, reference=rm[0]), flush=True)
        left = remaining_files(root / "executions")
        print(f"  left under executions/ after factflow: {left} files", flush=True)


def bench_s3(objects: int) -> None:
    import s3server

    from factflow_storage import create_storage_provider

    print("starting the S3 server...", flush=True)
    server = s3server.start()
    try:
        bucket = server.new_bucket()
        provider = create_storage_provider(f"minio://{bucket}", server.options())
        started = time.monotonic()
        for execution_id in ("big", "big-rclone"):
            provider.write_execution(execution_id, {"execution_id": execution_id, "status": "completed"})
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda n, e=execution_id: provider.write(
                    f"executions/{e}/route/stage/obj-{n:06d}.json", b'{"n": %d}' % n), range(objects)))
        client = server.client()
        total = sum(1 for _ in client.list_objects(bucket_name=bucket, recursive=True))
        print(f"{server.kind}, two executions of {objects} objects ({total} S3 objects with records and "
              f"journal markers; written in {time.monotonic() - started:.1f} s):", flush=True)
        ff_env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
        ff_env.update(server.env(), FACTFLOW_STORAGE_URI=f"minio://{bucket}")
        tools = server.tool_env()
        rclone = run_child(["rclone", "purge", f"{s3server.RCLONE_REMOTE}:{bucket}/executions/big-rclone"], tools)
        ff = run_child([*FACTFLOW, "execution", "delete", "big", "--yes"], ff_env)
        print(line("rclone purge", *rclone), flush=True)
        print(line("factflow execution delete", *ff, reference=rclone[0]), flush=True)
        names = [found.object_name for found in client.list_objects(bucket_name=bucket, recursive=True)]
        mine = [n for n in names if ("/big/" in n or n.endswith("/big.json")) and not n.startswith("_factflow/deletions/")]
        print(f"  left: {len(mine)} names of 'big' (factflow; plus its deletion record), "
              f"{sum('big-rclone' in n for n in names)} of 'big-rclone' (rclone: journal markers and the record)",
              flush=True)
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fs-objects", type=int, default=100_000)
    parser.add_argument("--s3-objects", type=int, default=10_000)
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-fs", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="factflow-delete-bench-"))
    try:
        if not args.skip_fs:
            bench_fs(args.fs_objects, work)
        if not args.skip_s3:
            bench_s3(args.s3_objects)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
