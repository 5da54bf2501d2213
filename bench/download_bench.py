"""Download benchmark: ``factflow storage download`` (direct and ``--api``) against
``rclone copy`` and ``aws s3 cp --recursive``, all reading the same S3 server.

    python3 bench/download_bench.py [--small-count 10000] [--small-bytes 2048]
                                    [--large-count 20] [--large-mib 50] [--jobs 16]

Starts a real S3 server (``tests/s3server.py``: radosgw, or minio when on PATH), writes
two executions through the provider (so every object has its metadata): many small
objects, and a few large ones. Each tool then copies each execution into a fresh
directory, and the run prints wall times and each factflow time's ratio to the tools'
(below 1 is faster). factflow also checks every file's sha256 and writes a sidecar per
object, which the other tools do not; ``--no-metadata`` rows show the cost of the
sidecars. In ``--api`` mode the time includes the server packing the archive into the
same S3 server and reading it back, as the API's design asks.

Target: faster than both tools. ``--repeat N`` keeps each tool's best of N runs.

``--table`` prints instead the performance table's rows (``rows()``, also run by
``bench/all.py``), factflow and ``rclone copy --transfers JOBS`` taken in turn, medians
of ``--repeat`` runs (at least 3): ``s3-download-small``, direct download with sidecars
(target ratio <= 1.0); ``api-download-large``, ``download --api`` through ``factflow
serve`` (target <= 1.25).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import s3server  # noqa: E402

from harness import REPEAT, Row, alternate, clean_env, wanted  # noqa: E402

from factflow_storage import create_storage_provider  # noqa: E402

FACTFLOW = [sys.executable, "-m", "factflow_storage"]
ROWS = ("s3-download-small", "api-download-large")


def populate(uri: str, options: dict, execution_id: str, count: int, size: int) -> None:
    provider = create_storage_provider(uri, options)
    chunk = os.urandom(size)

    def put(number: int) -> None:
        key = f"executions/{execution_id}/route-{number % 4}/stage-{number % 3}/msg-{number:06d}.bin"
        provider.write(key, chunk[number % 97:] + chunk[:number % 97], {"adapter": "bench", "n": number})

    with ThreadPoolExecutor(16 if size < 1024 * 1024 else 4) as pool:
        list(pool.map(put, range(count)))
    provider.write_execution(execution_id, {"execution_id": execution_id, "status": "completed"})
    provider.close()


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])} ... exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    return elapsed


def count_files(root: Path) -> tuple[int, int]:
    files = total = 0
    for directory, _, names in os.walk(root):
        for name in names:
            files += 1
            total += os.path.getsize(os.path.join(directory, name))
    return files, total


def start_api(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([*FACTFLOW, "serve", "--port", "0", "--threads", "32"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if "http://" not in line:
        process.kill()
        raise SystemExit(f"factflow serve did not start: {line!r}")
    return process, "http://" + line.split("http://", 1)[1].split()[0]


def _environments(server: s3server.S3Server, uri: str,
                  environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``factflow`` and ``rclone`` (remote ``bench:``) aimed at ``server``, over ``environ``
    without the user's factflow, AWS and rclone settings."""
    base = {k: v for k, v in environ.items() if not k.startswith(("FACTFLOW_", "AWS_", "RCLONE_"))}
    factflow_env = {**base, **server.env(), "FACTFLOW_STORAGE_URI": uri}
    rclone_env = {**base, "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Ceph",
                  "RCLONE_CONFIG_BENCH_ENDPOINT": server.url,
                  "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": server.access_key,
                  "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": server.secret_key,
                  "RCLONE_CONFIG_BENCH_REGION": server.region}
    return factflow_env, rclone_env


def rows(only: set[str] | None = None, quick: bool = False, repeat: int = REPEAT, jobs: int = 32,
         small: tuple[int, int] | None = None, large: tuple[int, int] | None = None) -> list[Row]:
    ids = wanted(ROWS, only)
    if not ids:
        return []
    small_count, small_bytes = small or ((200, 2048) if quick else (10_000, 2048))
    large_count, large_mib = large or ((2, 4) if quick else (20, 50))
    workdir = Path(tempfile.mkdtemp(prefix="download-bench-"))
    result = []
    try:
        with s3server.start(warm_up=True) as server:
            bucket = server.new_bucket()
            uri = f"minio://{bucket}"
            factflow_env, rclone_env = _environments(server, uri, clean_env())
            rclone = ["rclone", "copy", "--transfers", str(jobs), "--checkers", str(jobs)]
            target = workdir / "copy"

            def fresh() -> None:
                shutil.rmtree(target, ignore_errors=True)
                # Each run writes up to a GiB: the kernel's writeback of one run's files
                # would otherwise land in (and throttle) whichever run comes next.
                os.sync()

            def compare(execution: str, env: dict[str, str]) -> tuple[float, float]:
                download = [*FACTFLOW, "storage", "download", execution, "--quiet", "--jobs", str(jobs),
                            "--output-dir", str(target)]
                copy = [*rclone, f"bench:{bucket}/executions/{execution}/", str(target)]
                return alternate(repeat, lambda: (fresh(), timed(download, env))[1],
                                 lambda: (fresh(), timed(copy, rclone_env))[1])

            if "s3-download-small" in ids:
                populate(uri, server.options(), "small", small_count, small_bytes)
                ours, theirs = compare("small", factflow_env)
                result.append(Row("s3-download-small", f"`download` {small_count:,} x {small_bytes // 1024} KiB "
                                  "from S3, with sidecars", f"`rclone copy --transfers {jobs}`", ours, theirs,
                                  "<=", 1.0, runs=repeat))
            if "api-download-large" in ids:
                populate(uri, server.options(), "large", large_count, large_mib * 1024 * 1024)
                api_process, api_url = start_api(factflow_env)
                try:
                    ours, theirs = compare("large", {**factflow_env, "FACTFLOW_API_URL": api_url})
                finally:
                    api_process.terminate()
                    api_process.wait(timeout=10)
                result.append(Row("api-download-large", f"`download --api` {large_count} x {large_mib} MiB "
                                  "(serve over S3)", f"`rclone copy --transfers {jobs}`", ours, theirs,
                                  "<=", 1.25, runs=repeat))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small-count", type=int, default=10_000)
    parser.add_argument("--small-bytes", type=int, default=2048)
    parser.add_argument("--large-count", type=int, default=20)
    parser.add_argument("--large-mib", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=32, help="factflow --jobs, and rclone's in the tuned row")
    parser.add_argument("--repeat", type=int, default=1, help="Best of N runs per tool (the host may be busy)")
    parser.add_argument("--workdir", default=None, help="Where the copies go (default: a temp dir)")
    parser.add_argument("--table", action="store_true", help="print the performance table's rows only")
    args = parser.parse_args()
    if args.table:
        from harness import print_rows

        print_rows(rows(repeat=max(args.repeat, REPEAT), jobs=args.jobs,
                        small=(args.small_count, args.small_bytes), large=(args.large_count, args.large_mib)))
        return 0
    for tool in ("rclone", "aws"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not on PATH")

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="download-bench-"))
    with s3server.start(warm_up=True) as server:
        bucket = server.new_bucket()
        uri = f"minio://{bucket}"
        # radosgw makes its multipart pools on first use (~2 s): not a cost of any tool here.
        warm = create_storage_provider(uri, server.options())
        warm.put_record("bench/multipart-warm-up", io.BytesIO(os.urandom(20 * 1024 * 1024)))
        warm.delete_record("bench/multipart-warm-up")
        warm.close()
        executions = {"small": (args.small_count, args.small_bytes),
                      "large": (args.large_count, args.large_mib * 1024 * 1024)}
        for name, (count, size) in executions.items():
            started = time.perf_counter()
            populate(uri, server.options(), name, count, size)
            print(f"wrote execution {name!r}: {count} objects of {size} bytes "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)

        base = {k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "AWS_", "RCLONE_"))}
        factflow_env, rclone_env = _environments(server, uri, os.environ)
        aws_env = {**base, "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
                   "AWS_DEFAULT_REGION": server.region, "AWS_CONFIG_FILE": os.devnull,
                   "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        api_process, api_url = start_api(factflow_env)
        api_env = {**base, "FACTFLOW_API_URL": api_url}
        try:
            measured = []
            for name in executions:
                def out(label: str, name: str = name) -> Path:
                    path = workdir / f"{name}-{label}"
                    shutil.rmtree(path, ignore_errors=True)
                    return path

                download = [*FACTFLOW, "storage", "download", name, "--quiet", "--jobs", str(args.jobs)]
                source = f"executions/{name}/"
                tools = {
                    "factflow direct": (download + ["--output-dir"], factflow_env),
                    "factflow direct --no-metadata": (download + ["--no-metadata", "--output-dir"], factflow_env),
                    "factflow --api": (download + ["--output-dir"], api_env),
                    "rclone copy": (["rclone", "copy", f"bench:{bucket}/{source}"], rclone_env),
                    f"rclone copy --transfers {args.jobs}": (
                        ["rclone", "copy", "--transfers", str(args.jobs), "--checkers", str(args.jobs),
                         f"bench:{bucket}/{source}"], rclone_env),
                    "aws s3 cp --recursive": (["aws", "s3", "cp", "--recursive", "--quiet", "--endpoint-url",
                                               server.url, f"s3://{bucket}/{source}"], aws_env),
                }
                times = {}
                for number, (label, (argv, env)) in enumerate(tools.items()):
                    target = workdir / f"{name}-{number}"
                    shutil.rmtree(target, ignore_errors=True)
                    runs = []
                    for _ in range(args.repeat):
                        shutil.rmtree(target, ignore_errors=True)
                        runs.append(timed([*argv, str(target)], env))
                    times[label] = min(runs)
                    files, size = count_files(target)
                    print(f"  {name:<6} {label:<34} {times[label]:8.2f} s  ({files} files, "
                          f"{size / 2**20:.1f} MiB)", flush=True)
                    shutil.rmtree(target, ignore_errors=True)
                measured.append((name, times))
        finally:
            api_process.terminate()
            api_process.wait(timeout=10)

    print()
    print(f"{'execution':<10} {'factflow run':<32} {'seconds':>8}   vs rclone  vs rclone-tuned  vs aws")
    for name, times in measured:
        references = [times["rclone copy"], times[f"rclone copy --transfers {args.jobs}"],
                      times["aws s3 cp --recursive"]]
        for label in ("factflow direct", "factflow direct --no-metadata", "factflow --api"):
            ratios = "  ".join(f"{times[label] / ref:9.2f}" for ref in references)
            print(f"{name:<10} {label:<32} {times[label]:8.2f}   {ratios}")
    print("\nratios are factflow time / tool time: below 1 means factflow was faster")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
