"""Throughput and latency of ``factflow serve`` under N concurrent clients, against the
same reads done straight through the provider in process.

Each client thread keeps one HTTP connection and, until the time is up, reads a random
object (9 requests in 10) or lists a page of keys (1 in 10). The reference run does the
same operations with the same number of threads on the provider directly. Prints
requests/s, p50/p99 latency per operation and the served/direct ratio; exits 1 if any
request failed.

    python3 bench/serve_bench.py                      # 64 clients, a temp filesystem
    python3 bench/serve_bench.py --clients 16 --seconds 10 --storage file:///tmp/bench
    python3 bench/serve_bench.py --table              # the performance table's rows only

The table's rows (``rows()``, also run by ``bench/all.py``), each from runs taken in turn:

- ``serve-mix``: the workload above, served vs direct, median throughput of 3 runs each;
  target ratio >= 0.9;
- ``serve-p99``: 64 clients each cycling through a list page of 100 keys with their
  metadata, a read of an object and its metadata, over HTTP on a filesystem storage; the
  median over 3 runs of the p99 latency of all requests; target <= 250 ms.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from urllib.parse import quote, urlsplit

from harness import REPEAT, Row, clean_env, print_rows, wanted

from factflow_storage import create_storage_provider
from factflow_storage.service import StorageService

READ, LIST = "read", "list"
ROWS = ("serve-mix", "serve-p99")
METADATA_LIST, METADATA = "list+metadata", "metadata"


class Tally:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def add(self, op: str, seconds: float) -> None:
        with self.lock:
            self.latencies[op].append(seconds)

    def fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


def pick(rng: random.Random, keys: list[str]) -> tuple[str, str]:
    return (LIST, "") if rng.random() < 0.1 else (READ, rng.choice(keys))


def timed_get(connection: http.client.HTTPConnection, netloc: str, path: str, op: str, key: str,
              tally: Tally, size: int) -> http.client.HTTPConnection:
    """One GET, timed and checked; the connection to go on with (a new one when this one broke)."""
    started = time.perf_counter()
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as err:
        tally.fail(f"{op}: {err!r}")
        connection.close()
        return http.client.HTTPConnection(netloc, timeout=60)
    tally.add(op, time.perf_counter() - started)
    if response.status != 200 or (op == READ and len(body) != size):
        tally.fail(f"{op} {key}: HTTP {response.status} ({len(body)} bytes)")
    return connection


def http_client(netloc: str, keys: list[str], deadline: float, tally: Tally, seed: int, size: int) -> None:
    rng = random.Random(seed)
    connection = http.client.HTTPConnection(netloc, timeout=60)
    while time.perf_counter() < deadline:
        op, key = pick(rng, keys)
        path = (f"/api/v1/storage/objects/{quote(key)}" if op == READ
                else "/api/v1/storage/objects?prefix=bench/&limit=100&include_metadata=false")
        connection = timed_get(connection, netloc, path, op, key, tally, size)
    connection.close()


def metadata_client(netloc: str, keys: list[str], deadline: float, tally: Tally, seed: int, size: int) -> None:
    """list with metadata, get, metadata, in turn, on one connection."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection(netloc, timeout=60)
    turn = seed
    while time.perf_counter() < deadline:
        op = (METADATA_LIST, READ, METADATA)[turn % 3]
        turn += 1
        key = quote(rng.choice(keys))
        path = {METADATA_LIST: "/api/v1/storage/objects?prefix=bench/&limit=100&include_metadata=true",
                READ: f"/api/v1/storage/objects/{key}",
                METADATA: f"/api/v1/storage/objects/{key}?view=metadata"}[op]
        connection = timed_get(connection, netloc, path, op, key, tally, size)
    connection.close()


def direct_client(service: StorageService, keys: list[str], deadline: float, tally: Tally, seed: int,
                  size: int) -> None:
    rng = random.Random(seed)
    while time.perf_counter() < deadline:
        op, key = pick(rng, keys)
        started = time.perf_counter()
        try:
            if op == READ:
                ok = len(service.provider.read(key)) == size
            else:
                ok = len(service.list_page("bench/", limit=100, include_metadata=False)["objects"]) == 100
        except Exception as err:  # noqa: BLE001 - a benchmark counts every failure
            tally.fail(f"{op}: {err!r}")
            continue
        tally.add(op, time.perf_counter() - started)
        if not ok:
            tally.fail(f"{op} {key}: wrong answer")


def run_clients(target, args_for, clients: int, seconds: float) -> tuple[Tally, float]:
    tally = Tally()
    deadline = time.perf_counter() + seconds
    threads = [threading.Thread(target=target, args=args_for(n, deadline, tally)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally, time.perf_counter() - started


def summary(name: str, tally: Tally, elapsed: float) -> dict[str, float]:
    total = sum(len(values) for values in tally.latencies.values())
    print(f"{name}: {total} requests in {elapsed:.1f} s, {total / elapsed:,.0f} req/s, "
          f"{len(tally.errors)} errors")
    rates = {"all": total / elapsed}
    for op in (READ, LIST):
        values = sorted(tally.latencies[op])
        if not values:
            continue
        p50 = statistics.median(values) * 1000
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))] * 1000
        rates[op] = len(values) / elapsed
        print(f"  {op:<5} {len(values):>8} req  {rates[op]:>9,.0f} req/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms")
    for error in tally.errors[:5]:
        print(f"  error: {error}")
    return rates


def start_server(uri: str, threads: int, log) -> tuple[subprocess.Popen, str]:
    env = clean_env()
    proc = subprocess.Popen([sys.executable, "-m", "factflow_storage", "serve", "--port", "0", "--threads",
                             str(threads), "--storage", uri], env=env, stdout=subprocess.PIPE, stderr=log)
    line = proc.stdout.readline().decode()
    if not line.startswith("serving on "):
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, urlsplit(line.split()[-1]).netloc


def p99(tally: Tally) -> float:
    values = sorted(v for op in tally.latencies.values() for v in op)
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def _throughput(tally: Tally, elapsed: float) -> float:
    if tally.errors:
        raise SystemExit(f"{len(tally.errors)} requests failed, first: {tally.errors[0]}")
    return sum(len(values) for values in tally.latencies.values()) / elapsed


def rows(only: set[str] | None = None, quick: bool = False, repeat: int = REPEAT, clients: int = 64,
         seconds: float | None = None, objects: int = 500, size: int = 16 * 1024) -> list[Row]:
    ids = wanted(ROWS, only)
    if not ids:
        return []
    seconds = seconds or (0.5 if quick else 6.0)
    objects = min(objects, 100) if quick else objects
    workdir = tempfile.mkdtemp(prefix="serve-bench-")
    uri = f"file://{workdir}/storage"
    provider = create_storage_provider(uri)
    service = StorageService(provider)
    payload = os.urandom(size)
    keys = [f"bench/obj-{n:06d}.bin" for n in range(objects)]
    for key in keys:
        service.put(key, payload)
    result = []
    try:
        with open(os.path.join(workdir, "server.log"), "wb") as log:
            proc, netloc = start_server(uri, 32, log)
            try:
                if "serve-mix" in ids:
                    served, direct = [], []
                    for _ in range(repeat):
                        served.append(_throughput(*run_clients(
                            http_client, lambda n, deadline, tally: (netloc, keys, deadline, tally, n, size),
                            clients, seconds)))
                        direct.append(_throughput(*run_clients(
                            direct_client, lambda n, deadline, tally: (service, keys, deadline, tally, n, size),
                            clients, seconds)))
                    result.append(Row("serve-mix", f"{clients} HTTP clients through `serve`, 9 reads of a "
                                      f"{size // 1024} KiB object : 1 list of 100 keys", "the same work in-process",
                                      statistics.median(served), statistics.median(direct), ">=", 0.9,
                                      unit="req/s", runs=repeat))
                if "serve-p99" in ids:
                    tails = []
                    for _ in range(repeat):
                        tally, elapsed = run_clients(
                            metadata_client, lambda n, deadline, tally: (netloc, keys, deadline, tally, n, size),
                            clients, seconds)
                        _throughput(tally, elapsed)
                        tails.append(p99(tally))
                    result.append(Row("serve-p99", f"{clients} clients, list with metadata + get + metadata, fs",
                                      "—", statistics.median(tails), None, "<=", 0.25, runs=repeat,
                                      on_ratio=False))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    finally:
        provider.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0, help="per run")
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--size", type=int, default=16 * 1024, help="bytes per object")
    parser.add_argument("--threads", type=int, default=32, help="server worker threads")
    parser.add_argument("--storage", default=None, help="file:// URI (default: a temp dir)")
    parser.add_argument("--table", action="store_true", help="print the performance table's rows only")
    args = parser.parse_args()
    if args.table:
        print_rows(rows(clients=args.clients, seconds=args.seconds, objects=args.objects, size=args.size))
        return 0

    workdir = tempfile.mkdtemp(prefix="serve-bench-")
    uri = args.storage or f"file://{workdir}/storage"
    provider = create_storage_provider(uri)
    service = StorageService(provider)
    payload = os.urandom(args.size)
    keys = [f"bench/obj-{n:06d}.bin" for n in range(args.objects)]
    for key in keys:
        service.put(key, payload)
    print(f"{args.clients} clients, {args.objects} objects of {args.size} bytes, {args.seconds:.0f} s per run, "
          f"server threads {args.threads}, storage {uri}, {os.cpu_count()} CPUs")

    with open(os.path.join(workdir, "server.log"), "wb") as log:
        proc, netloc = start_server(uri, args.threads, log)
        try:
            served, served_time = run_clients(
                http_client, lambda n, deadline, tally: (netloc, keys, deadline, tally, n, args.size),
                args.clients, args.seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    direct, direct_time = run_clients(
        direct_client, lambda n, deadline, tally: (service, keys, deadline, tally, n, args.size),
        args.clients, args.seconds)

    served_rates = summary("served over HTTP", served, served_time)
    direct_rates = summary("direct through the provider", direct, direct_time)
    for op in ("all", READ, LIST):
        if op in served_rates and op in direct_rates:
            print(f"ratio served/direct ({op}): {served_rates[op] / direct_rates[op]:.2f}")
    provider.close()
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if served.errors or direct.errors else 0


if __name__ == "__main__":
    sys.exit(main())
