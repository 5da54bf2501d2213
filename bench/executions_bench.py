"""Execution history benchmark on S3: a page costs a page, the whole history keeps up with rclone.

    python3 bench/executions_bench.py [--executions 5000] [--objects 100000] [--repeat 3] [--quick] [--only ID,...]

Starts its own S3 server (``tests/s3server.py``), writes ``--executions`` finished
executions the way writers do (record plus index entry; the first one alone, so it marks
the index complete) into one bucket and 50 into another, then reports, each a median of
alternating runs:

- ``exec-page-cli``: ``factflow execution list --limit 50 --output json`` (a fresh
  process) at N executions vs the same at 50; target: within 2x;
- ``exec-page-http``: ``GET /api/v1/executions?limit=50`` of a running server at N vs
  at 50; target: within 2x (and under 0.5 s, the factflow column); each sample the median of
  15 requests;
- ``exec-page-http-list``: that page against the one LIST request it sends, made bare
  (``max-keys=52`` of the index, at N): what factflow adds to the S3 server's own cost;
  target <= 1.5x (the HTTP round trip and the JSON are the rest);
- ``exec-list-all``: ``factflow execution list --output json`` (every execution) vs
  ``rclone copy --transfers 32`` of the records; target <= 1.0x;
- ``exec-prune-plan``: ``factflow storage prune --older-than 0s`` (the dry run plans every
  execution) vs the same rclone copy; target <= 2.0x;
- ``exec-console-home``: the console's home (executions) in headless Chromium, from
  navigation to the table shown, at N executions vs at 50; target: within 2x;
- ``exec-live-open``: the live panel's stream (``/api/v1/storage/events?replay=counts``)
  of a running execution of 10,000 objects, until its counts arrive, vs
  ``GET /api/v1/storage/du`` of the same execution (one listing); target under 1 s;
- ``exec-live-open-big``: the same at ``--objects`` objects (100,000); target: no slower
  than that ``du`` (1.25x), since both are one listing of the execution.

``--quick`` writes 200 executions, and 1,000 and 2,000 objects. Compare ratios from one run, never
seconds across runs.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import s3server  # noqa: E402

from harness import REPEAT, Row, alternate, clean_env, print_rows, timed, wanted  # noqa: E402

from factflow_storage import create_storage_provider  # noqa: E402

FACTFLOW = [sys.executable, "-m", "factflow_storage"]
ROWS = ("exec-page-cli", "exec-page-http", "exec-page-http-list", "exec-list-all", "exec-prune-plan",
        "exec-console-home", "exec-live-open", "exec-live-open-big")
LIVE_OBJECTS = 10_000
SMALL = 50
OBJECTS = 100_000
LIVE_EXECUTION = "big-run"


def fill(provider, count: int) -> float:
    """``count`` finished executions a minute apart; returns the seconds it took."""
    def write(n: int) -> None:
        day, minute = divmod(n, 24 * 60)
        started = f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T{minute // 60:02d}:{minute % 60:02d}:00.000Z"
        provider.write_execution(f"run-{n:05d}", {"execution_id": f"run-{n:05d}", "status": "completed",
                                                  "started_at": started, "finished_at": started, "object_count": 0})

    begun = time.perf_counter()
    write(0)  # alone: the first writer of an empty store marks the index complete
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(write, range(1, count)))
    return time.perf_counter() - begun


def serve(provider):
    """A server over ``provider`` in this process; returns its URL and a stop function."""
    from factflow_storage.server.app import create_server, stop_server
    from factflow_storage.service import StorageService

    server = create_server(StorageService(provider), "127.0.0.1", 0, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.effective_port}", lambda: stop_server(server)


def fill_objects(server, bucket: str, count: int) -> float:
    """One running execution of ``count`` small objects, put straight to S3 (a writer's
    journal markers would double the puts and tell the bench nothing)."""
    provider = create_storage_provider(f"minio://{bucket}", server.options())
    begun = time.perf_counter()
    provider.write_execution(LIVE_EXECUTION, {"execution_id": LIVE_EXECUTION, "status": "running",
                                              "started_at": "2026-06-01T00:00:00.000Z"})
    client = server.client()
    routes = ("fetch/page", "parse/chunk", "parse/embed", "index/vector")

    def put(n: int) -> None:
        key = f"executions/{LIVE_EXECUTION}/{routes[n % len(routes)]}/m{n:06d}.json"
        client.put_object(bucket_name=bucket, object_name=key, data=io.BytesIO(b"{}"), length=2)

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(put, range(count)))
    provider.close()
    return time.perf_counter() - begun


def live_open_seconds(url: str) -> float:
    """From the request to the stream's counts event."""
    begun = time.perf_counter()
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=300)
    try:
        connection.request("GET", f"/api/v1/storage/events?execution_id={LIVE_EXECUTION}&replay=counts")
        response = connection.getresponse()
        while True:
            line = response.readline()
            if not line:
                raise SystemExit("the event stream ended before its counts")
            if line.startswith(b"event: storage.counts"):
                return time.perf_counter() - begun
    finally:
        connection.close()


def du_seconds(url: str) -> float:
    begun = time.perf_counter()
    with urllib.request.urlopen(f"{url}/api/v1/storage/du?execution_id={LIVE_EXECUTION}", timeout=300) as reply:
        reply.read()
    return time.perf_counter() - begun


def console_home_seconds(console) -> float:
    console.driver.get("about:blank")
    begun = time.perf_counter()
    console.open("#/", view="executions", timeout=300)
    return time.perf_counter() - begun


def http_seconds(url: str) -> float:
    """The median of 15 requests: one takes milliseconds, less than the load's jitter."""
    return statistics.median(_one_page(url) for _ in range(15))


def _one_page(url: str) -> float:
    begun = time.perf_counter()
    with urllib.request.urlopen(url + "/api/v1/executions?limit=50", timeout=120) as reply:
        reply.read()
    return time.perf_counter() - begun


def bare_list_seconds(server, bucket: str) -> float:
    """The LIST a page of 50 sends (52 index names), alone: what the S3 server costs."""
    from factflow_storage.providers import s3_client

    client = server.client()
    query = {"list-type": "2", "prefix": "_factflow/execution-index/", "delimiter": "", "max-keys": "52",
             "encoding-type": "url"}

    def once() -> float:
        begun = time.perf_counter()
        assert s3_client.signed_get(client, bucket, query).data  # preloaded: the whole answer is read
        return time.perf_counter() - begun

    return statistics.median(once() for _ in range(15))


def rows(only: set[str] | None = None, quick: bool = False, repeat: int = REPEAT,
         executions: int | None = None, objects: int | None = None) -> list[Row]:
    ids = wanted(ROWS, only)
    if not ids:
        return []
    count = executions or (200 if quick else 5000)
    objects = objects or (2000 if quick else OBJECTS)
    result = []
    with s3server.start() as server:
        big, small = server.new_bucket(), server.new_bucket()
        providers = [create_storage_provider(f"minio://{bucket}", server.options()) for bucket in (big, small)]
        if set(ids) - {"exec-live-open"}:
            print(f"filled {count} executions in {fill(providers[0], count):.1f} s", file=sys.stderr, flush=True)
            fill(providers[1], SMALL)
        env_big = clean_env(**server.env(), FACTFLOW_STORAGE_URI=f"minio://{big}")
        env_small = clean_env(**server.env(), FACTFLOW_STORAGE_URI=f"minio://{small}")
        page = [*FACTFLOW, "execution", "list", "--limit", "50", "--output", "json"]
        if "exec-page-cli" in ids:
            timed(page, env_big), timed(page, env_small)  # bytecode and first requests, unmeasured
            ours, theirs = alternate(repeat, lambda: timed(page, env_big), lambda: timed(page, env_small))
            result.append(Row("exec-page-cli", f"first page of 50 of {count:,} executions (CLI)",
                              f"the same of {SMALL}", ours, theirs, "<=", 2.0, runs=repeat))
        if {"exec-page-http", "exec-page-http-list"} & set(ids):
            url_big, stop_big = serve(providers[0])
            url_small, stop_small = serve(providers[1])
            try:
                http_seconds(url_big), http_seconds(url_small)
                ours, theirs = alternate(repeat, lambda: http_seconds(url_big), lambda: http_seconds(url_small))
            finally:
                stop_big(), stop_small()
            if "exec-page-http" in ids:
                result.append(Row("exec-page-http", f"GET first page of 50 of {count:,} executions",
                                  f"the same of {SMALL}", ours, theirs, "<=", 2.0, runs=repeat))
            bare, _ = alternate(repeat, lambda: bare_list_seconds(server, big), lambda: 0.0)
            if "exec-page-http-list" in ids:
                result.append(Row("exec-page-http-list", f"GET first page of 50 of {count:,} executions",
                                  "the one LIST it sends, bare", ours, bare, "<=", 1.5, runs=repeat))
        copy_dir = tempfile.mkdtemp(prefix="ff-exec-bench-")
        remote = f"{s3server.RCLONE_REMOTE}:{big}/_factflow/executions/"
        rclone = ["rclone", "copy", "--transfers", "32", remote, copy_dir]

        def fresh() -> None:
            shutil.rmtree(copy_dir, ignore_errors=True)
            os.makedirs(copy_dir)

        try:
            if "exec-list-all" in ids:
                whole = [*FACTFLOW, "execution", "list", "--output", "json"]
                ours, theirs = alternate(repeat, lambda: timed(whole, env_big),
                                         lambda: timed(rclone, server.tool_env(), before=fresh))
                result.append(Row("exec-list-all", f"list all {count:,} executions", "`rclone copy --transfers 32`",
                                  ours, theirs, "<=", 1.0, runs=repeat))
            if "exec-prune-plan" in ids:
                plan = [*FACTFLOW, "storage", "prune", "--older-than", "0s", "--output", "json"]
                ours, theirs = alternate(repeat, lambda: timed(plan, env_big),
                                         lambda: timed(rclone, server.tool_env(), before=fresh))
                result.append(Row("exec-prune-plan", f"prune dry run of {count:,} executions",
                                  "`rclone copy --transfers 32`", ours, theirs, "<=", 2.0, runs=repeat))
        finally:
            shutil.rmtree(copy_dir, ignore_errors=True)
        if "exec-console-home" in ids:
            result.append(console_home_row(providers, count, repeat))
        live_sizes = {"exec-live-open": 1000 if quick else LIVE_OBJECTS, "exec-live-open-big": objects}
        for row_id in ("exec-live-open", "exec-live-open-big"):
            if row_id in ids:
                result.append(live_open_row(server, row_id, live_sizes[row_id], repeat))
        for provider in providers:
            provider.close()
    return result


def live_open_row(server, row_id: str, objects: int, repeat: int) -> Row:
    live = server.new_bucket()
    print(f"filled {objects:,} objects in {fill_objects(server, live, objects):.1f} s", file=sys.stderr, flush=True)
    provider = create_storage_provider(f"minio://{live}", server.options())
    url, stop = serve(provider)
    try:
        live_open_seconds(url), du_seconds(url)
        ours, theirs = alternate(repeat, lambda: live_open_seconds(url), lambda: du_seconds(url))
    finally:
        stop()
        provider.close()
    work = f"live panel open on {objects:,} objects (counts)"
    if row_id == "exec-live-open":
        return Row(row_id, work, "GET du of the execution", ours, theirs, "<=", 1.0, runs=repeat, on_ratio=False)
    return Row(row_id, work, "GET du of the execution", ours, theirs, "<=", 1.25, runs=repeat)


def console_home_row(providers, count: int, repeat: int) -> Row:
    """The console's home over N executions vs over 50, in one headless Chromium."""
    from console_support import Console, open_browser, temp_dirs

    scratch = tempfile.mkdtemp(prefix="ff-exec-console-")
    downloads, profile = temp_dirs(Path(scratch))
    (Path(scratch) / "shots").mkdir()
    driver = open_browser(downloads, profile)
    url_big, stop_big = serve(providers[0])
    url_small, stop_small = serve(providers[1])
    try:
        big = Console(driver, url_big, Path(scratch) / "shots", downloads)
        small = Console(driver, url_small, Path(scratch) / "shots", downloads)
        console_home_seconds(big), console_home_seconds(small)
        ours, theirs = alternate(repeat, lambda: console_home_seconds(big), lambda: console_home_seconds(small))
    finally:
        driver.quit()
        stop_big(), stop_small()
        shutil.rmtree(scratch, ignore_errors=True)
    return Row("exec-console-home", f"console home of {count:,} executions (Chromium)", f"the same of {SMALL}",
               ours, theirs, "<=", 2.0, runs=repeat)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=REPEAT)
    parser.add_argument("--objects", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=None, help="comma-separated row ids")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    print_rows(rows(only, quick=args.quick, repeat=args.repeat, executions=args.executions, objects=args.objects))
    return 0


if __name__ == "__main__":
    sys.exit(main())
