"""Copy benchmark: ``factflow execution copy`` of 2,000 small objects from a filesystem
store into S3, against ``rclone copy --transfers 32`` of the same files.

    python3 bench/copy_bench.py [--count 2000] [--bytes 2048] [--jobs 32] [--repeat 3] [--quick]

Starts a real S3 server (``tests/s3server.py``: radosgw, or minio when on PATH), writes
one finished execution into a filesystem store through the provider (so every object has
its sidecar), then, taking turns, copies it into a fresh bucket each run: factflow copies
objects with their metadata, the lineage index and the execution record; rclone copies the
object files only (the sidecars excluded). A second factflow run into a bucket that
already holds everything measures the re-run (it reads both sides' checksums and copies
nothing).

Rows (also run by ``bench/all.py``): ``copy-fs-s3`` (target ratio <= 1.25 of rclone) and
``copy-rerun`` (the re-run against factflow's own first run, target <= 0.3).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import s3server  # noqa: E402

from harness import FACTFLOW, REPEAT, Row, alternate, clean_env, print_rows, timed, wanted  # noqa: E402

from factflow_storage import create_storage_provider  # noqa: E402

ROWS = ("copy-fs-s3", "copy-rerun")
EXECUTION = "bench-copy"


def populate(root: Path, count: int, size: int) -> None:
    chunk = os.urandom(size)
    with create_storage_provider(f"file://{root}", {}) as provider:
        provider.write_execution(EXECUTION, {"execution_id": EXECUTION, "status": "running",
                                             "started_at": "2026-01-01T00:00:00.000Z"})
        for number in range(count):
            key = f"executions/{EXECUTION}/route-{number % 4}/stage-{number % 3}/msg-{number:06d}.bin"
            provider.write(key, chunk[number % 97:] + chunk[:number % 97], {"adapter": "bench", "n": number})
        provider.write_execution(EXECUTION, {"execution_id": EXECUTION, "status": "completed",
                                             "started_at": "2026-01-01T00:00:00.000Z", "object_count": count})


def rows(only: set[str] | None = None, quick: bool = False, repeat: int = REPEAT, jobs: int = 32,
         count: int | None = None, size: int = 2048) -> list[Row]:
    ids = wanted(ROWS, only)
    if not ids:
        return []
    count = count or (200 if quick else 2000)
    workdir = Path(tempfile.mkdtemp(prefix="copy-bench-"))
    try:
        root = workdir / "store"
        populate(root, count, size)
        with s3server.start(warm_up=True) as server:
            base = {k: v for k, v in clean_env().items() if not k.startswith(("AWS_", "RCLONE_"))}
            ours = {**base, **server.env(), "FACTFLOW_STORAGE_URI": f"file://{root}"}
            rclone = {**base, "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Ceph",
                      "RCLONE_CONFIG_BENCH_ENDPOINT": server.url,
                      "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": server.access_key,
                      "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": server.secret_key,
                      "RCLONE_CONFIG_BENCH_REGION": server.region}
            last: list[str] = []

            def factflow_copy() -> float:
                last[:] = [server.new_bucket()]
                return timed([*FACTFLOW, "execution", "copy", EXECUTION, "--to", f"minio://{last[0]}",
                              "--jobs", str(jobs), "--quiet"], ours)

            def rclone_copy() -> float:
                bucket = server.new_bucket()
                return timed(["env", "-u", "AWS_CA_BUNDLE", "rclone", "copy", "--transfers", str(jobs),
                              "--exclude", "*.meta.json", str(root / "executions"), f"bench:{bucket}/executions"],
                             rclone)

            first, reference = alternate(repeat, factflow_copy, rclone_copy)
            result = []
            if "copy-fs-s3" in ids:
                result.append(Row("copy-fs-s3", f"execution copy, {count} x {size} B, fs -> S3",
                                  f"rclone copy --transfers {jobs}", first, reference, "<=", 1.25, runs=repeat))
            if "copy-rerun" in ids:
                def rerun() -> float:
                    return timed([*FACTFLOW, "execution", "copy", EXECUTION, "--to", f"minio://{last[0]}",
                                  "--jobs", str(jobs), "--quiet"], ours)

                again, _ = alternate(repeat, rerun, lambda: 0.0)
                result.append(Row("copy-rerun", "execution copy again, nothing to copy",
                                  "the first copy (above)", again, first, "<=", 0.3, runs=repeat))
            return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=None, help="objects (default 2000; 200 with --quick)")
    parser.add_argument("--bytes", type=int, default=2048, help="bytes per object")
    parser.add_argument("--jobs", type=int, default=32, help="transfers at once, both tools")
    parser.add_argument("--repeat", type=int, default=REPEAT, help="runs of each side (medians)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    print_rows(rows(quick=args.quick, repeat=args.repeat, jobs=args.jobs, count=args.count, size=args.bytes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
