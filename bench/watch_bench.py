"""Watch latency: from ``write`` returning to the SSE event arriving at a client.

For each provider (filesystem; S3 with the listen API, radosgw behind the test suite's
listen stand-in; S3 without it, radosgw through the write journal) a real factflow
server runs on waitress, one SSE client reads ``/api/v1/storage/events``, and a writer
puts N objects one after another. Prints p50/p99/max per provider against the targets,
and, as a reference, the same latency measured at the bare notification mechanism
(watchfiles for the filesystem, minio-py's listen call for the listen API, a LIST per
poll for the journal) so the ratio shows what the project adds on top.

    python3 bench/watch_bench.py [--writes 1000] [--only file,s3-listen,s3-journal]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from factflow_storage import create_storage_provider  # noqa: E402
from factflow_storage.executions import set_status  # noqa: E402
from factflow_storage.server.app import create_server, stop_server  # noqa: E402
from factflow_storage.service import StorageService  # noqa: E402

TARGETS_MS = {"file": 100, "s3-listen": 300, "s3-journal": 1000}
EXEC = "bench"


def sse_arrivals(base_port: int, expected: int, arrivals: dict[str, float], ready: threading.Event) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", base_port, timeout=120)
    connection.request("GET", f"/api/v1/storage/events?execution_id={EXEC}&timeout=3600")
    response = connection.getresponse()
    ready.set()
    while True:
        line = response.readline()
        if not line:
            return
        if line.startswith(b"data: "):
            data = orjson.loads(line[6:])
            if "key" in data:
                arrivals.setdefault(data["key"], time.perf_counter())
            elif "status" in data:
                return


def measure(provider, writer, writes: int, pause: float) -> list[float]:
    set_status(provider, EXEC, "running")
    server = create_server(StorageService(provider), "127.0.0.1", 0, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    arrivals: dict[str, float] = {}
    ready = threading.Event()
    reader = threading.Thread(target=sse_arrivals, args=(server.effective_port, writes, arrivals, ready), daemon=True)
    reader.start()
    ready.wait(30)
    time.sleep(1.0)  # the stream has replayed (nothing) and its source is armed
    done: dict[str, float] = {}
    for i in range(writes):
        key = f"executions/{EXEC}/route-{i % 4}/parse/m{i:06d}.json"
        writer.write(key, orjson.dumps({"n": i}))
        done[key] = time.perf_counter()
        time.sleep(pause)
    set_status(writer, EXEC, "completed")
    reader.join(120)
    stop_server(server)
    missing = [key for key in done if key not in arrivals]
    if missing:
        raise SystemExit(f"{len(missing)} events never arrived, first {missing[0]}")
    return [(arrivals[key] - done[key]) * 1000 for key in done]


def reference_fs(root: str, writes: int, pause: float) -> list[float]:
    """Bare watchfiles: write a file, wait for its notification."""
    import watchfiles

    directory = os.path.join(root, "ref")
    os.makedirs(directory)
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        for changes in watchfiles.watch(directory, debounce=40, step=5, stop_event=stop, rust_timeout=100,
                                        yield_on_timeout=True, watch_filter=None):
            now = time.perf_counter()
            for _, path in changes:
                seen.setdefault(os.path.basename(path), now)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(0.5)
    done = {}
    for i in range(writes):
        name = f"m{i:06d}"
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(b"x")
        done[name] = time.perf_counter()
        time.sleep(pause)
    time.sleep(0.5)
    stop.set()
    thread.join(5)
    return [(seen[n] - done[n]) * 1000 for n in done if n in seen]


def reference_listen(server, endpoint: str, writes: int, pause: float) -> list[float]:
    """Bare minio-py listen call through the same stand-in."""
    import io

    client = server.client(endpoint=endpoint)
    bucket = server.new_bucket()
    seen: dict[str, float] = {}
    events = client.listen_bucket_notification(bucket_name=bucket, prefix="ref/", events=("s3:ObjectCreated:*",))

    def listen() -> None:
        from urllib.parse import unquote_plus

        for event in events:
            for record in event["Records"]:
                seen.setdefault(unquote_plus(record["s3"]["object"]["key"]), time.perf_counter())
            if len(seen) >= writes:
                return

    threading.Thread(target=listen, daemon=True).start()
    time.sleep(0.5)
    done = {}
    for i in range(writes):
        name = f"ref/m{i:06d}"
        client.put_object(bucket_name=bucket, object_name=name, data=io.BytesIO(b"x"), length=1)
        done[name] = time.perf_counter()
        time.sleep(pause)
    time.sleep(1.0)
    return [(seen[n] - done[n]) * 1000 for n in done if n in seen]


def summary(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99, ordered[-1]


def report(kind: str, latencies: list[float], reference: list[float] | None, what: str) -> None:
    p50, p99, worst = summary(latencies)
    target = TARGETS_MS[kind]
    verdict = "meets" if p50 < target else "MISSES"
    line = (f"{kind:<11} n={len(latencies):<5} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {worst:7.1f} ms  "
            f"(target p50 < {target} ms: {verdict})")
    if reference:
        r50, r99, _ = summary(reference)
        line += f"\n{'':<11} reference ({what}): p50 {r50:6.1f} ms  p99 {r99:6.1f} ms  -> ratio p50 {p50 / max(r50, 0.01):.1f}x"
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--pause", type=float, default=0.005, help="seconds between writes")
    parser.add_argument("--only", default="file,s3-listen,s3-journal")
    args = parser.parse_args()
    kinds = args.only.split(",")
    print(f"watch latency, put returned -> SSE event received, {args.writes} writes, {args.pause * 1000:.0f} ms apart")
    if "file" in kinds:
        root = tempfile.mkdtemp(prefix="watch-bench-")
        provider = create_storage_provider(f"file://{root}/storage")
        report("file", measure(provider, provider, args.writes, args.pause),
               reference_fs(root, args.writes, args.pause), "bare watchfiles")
    if {"s3-listen", "s3-journal"} & set(kinds):
        import s3server
        from listen_standin import ListenStandIn

        with s3server.start() as server:
            if "s3-listen" in kinds:
                with ListenStandIn(server.endpoint) as standin:
                    options = dict(server.options(), endpoint=standin.endpoint)
                    uri = f"minio://{server.new_bucket()}"
                    latencies = measure(create_storage_provider(uri, options), create_storage_provider(uri, options),
                                        args.writes, args.pause)
                    report("s3-listen", latencies, reference_listen(server, standin.endpoint, args.writes, args.pause),
                           "bare minio-py listen")
            if "s3-journal" in kinds:
                uri = f"minio://{server.new_bucket()}"
                latencies = measure(create_storage_provider(uri, server.options()),
                                    create_storage_provider(uri, server.options()), args.writes, args.pause)
                report("s3-journal", latencies, None, "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
