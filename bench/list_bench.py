"""Listing benchmark: ``factflow storage list --output json`` against ``find -type f``.

    python3 bench/list_bench.py [--root DIR] [--objects 100000] [--repeat 3] [--table]

Lays out a filesystem storage of N objects (files and sidecars written directly, no fsync,
in the provider's own format) as ``executions/e<NNN>/<route>/<stage>/msg-<NNNNNN>.json``,
10 000 objects per execution, then prints side by side, in one run:

- wall time of the listing vs ``find ROOT/PREFIX -type f`` (best of ``--repeat``) and the ratio,
  and vs ``find -printf '%s %T@ %p'``, which like the listing stats every file for its size and
  modification time (``-type f`` alone reads only directories);
- peak memory (the child's maximum RSS, from GNU time) at 10 000 and at N objects: flat means it does not
  grow with the number of objects;
- time to the first line of output.

Targets: at least half of find's speed (ratio <= 2), flat memory, first line < 0.2 s.

``--table`` prints instead the row of the performance table (``rows()``, also run by
``bench/all.py``): the listing vs ``find -printf '%s %T@ %p\n'``, alternately, medians of
``--repeat`` runs; target ratio <= 1.25.
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
from pathlib import Path

import orjson
from harness import REPEAT, Row, alternate, clean_env, print_rows, timed, wanted

PER_EXECUTION = 10_000
ROUTES = {"sitemap_scraper": ("web_scraper",), "markdown_processor": ("html_to_markdown", "chunker"),
          "indexer": ("embed", "upsert")}
STAGES = [(route, stage) for route, stages in ROUTES.items() for stage in stages]
FACTFLOW = [sys.executable, "-m", "factflow_storage"]
GNU_TIME = "/usr/bin/time"
ROWS = ("fs-list",)


def build_tree(root: Path, objects: int) -> None:
    created = "2024-05-01T10:00:00.000Z"
    for number in range(objects):
        execution, within = divmod(number, PER_EXECUTION)
        route, stage = STAGES[within % len(STAGES)]
        key = f"executions/e{execution:03d}/{route}/{stage}/msg-{within:06d}.json"
        path = root / key
        if within < len(STAGES):
            path.parent.mkdir(parents=True, exist_ok=True)
        data = b'{"msg": %d, "text": "%s"}' % (number, b"x" * (number % 200))
        path.write_bytes(data)
        blob = {"execution_id": f"e{execution:03d}", "route_id": route, "stage": stage,
                "msg_id": f"msg-{within:06d}.json", "content_type": "application/json", "key": key,
                "content_length": len(data), "checksum": "sha256:" + hashlib.sha256(data).hexdigest(),
                "created_at": created, "_factflow_inode": path.stat().st_ino}
        (root / (key + ".meta.json")).write_bytes(orjson.dumps(blob))


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB, exit status) of one child writing to /dev/null.

    The peak comes from GNU time: a child's ru_maxrss also counts the address space it
    had before exec, which for a direct child of this (large) process is ours.
    """
    with tempfile.NamedTemporaryFile("r") as report, open(os.devnull, "wb") as sink:
        started = time.perf_counter()
        code = subprocess.run([GNU_TIME, "-f", "%M", "-o", report.name, *argv], stdout=sink, env=env).returncode
        elapsed = time.perf_counter() - started
        peak = int(report.read().split()[-1])
    return elapsed, peak, code


def best_of(repeat: int, argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    runs = []
    for _ in range(repeat):
        elapsed, rss, code = run_child(argv, env)
        if code != 0:
            raise SystemExit(f"{' '.join(argv)} exited {code}")
        runs.append((elapsed, rss))
    return min(r[0] for r in runs), max(r[1] for r in runs)


def first_line_after(argv: list[str], env: dict[str, str]) -> tuple[float, bytes]:
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
    line = child.stdout.readline()
    elapsed = time.perf_counter() - started
    child.kill()
    child.communicate()
    return elapsed, line


def count_lines(argv: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Lines of output, and the first and last, to check the listing is whole and ordered."""
    out = subprocess.run(argv, stdout=subprocess.PIPE, env=env, check=True).stdout
    lines = out.splitlines()
    return len(lines), lines[0], lines[-1]


def rows(only: set[str] | None = None, quick: bool = False, repeat: int = REPEAT,
         objects: int | None = None) -> list[Row]:
    if not wanted(ROWS, only):
        return []
    objects = objects or (500 if quick else 100_000)
    root = Path(tempfile.mkdtemp(prefix="factflow-list-bench-"))
    try:
        build_tree(root, objects)
        env = clean_env(FACTFLOW_STORAGE_URI=f"file://{root}")
        listing = [*FACTFLOW, "storage", "list", "--prefix", "executions/", "--output", "json"]
        find = ["find", str(root / "executions"), "-type", "f", "-printf", "%s %T@ %p\n"]
        lines, _, _ = count_lines(listing, env)
        if lines != objects:
            raise SystemExit(f"listed {lines} objects, expected {objects}")
        ours, theirs = alternate(repeat, lambda: timed(listing, env), lambda: timed(find, env))
        return [Row("fs-list", f"`list` {objects:,} objects, fs, `--output json`",
                    "`find -printf '%s %T@ %p\\n'`", ours, theirs, "<=", 1.25, runs=repeat)]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="where to lay out the tree (default: a temp dir, removed after)")
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--table", action="store_true", help="print the performance table's row only")
    args = parser.parse_args()
    if args.table:
        print_rows(rows(repeat=args.repeat, objects=args.objects))
        return
    if args.objects < PER_EXECUTION:
        parser.error(f"--objects must be at least {PER_EXECUTION}")

    scratch = None if args.root else tempfile.mkdtemp(prefix="factflow-bench-")
    root = args.root or Path(scratch)
    try:
        started = time.perf_counter()
        if not (root / "executions").exists():
            build_tree(root, args.objects)
        print(f"tree: {args.objects} objects (+ sidecars) under {root}, laid out in "
              f"{time.perf_counter() - started:.1f} s")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
        env["FACTFLOW_STORAGE_URI"] = f"file://{root}"

        measured = []
        for count, prefix in ((PER_EXECUTION, "executions/e000/"), (args.objects, "executions/")):
            listing = [*FACTFLOW, "storage", "list", "--prefix", prefix, "--output", "json"]
            lines, first, last = count_lines(listing, env)
            assert lines == count, f"listed {lines} objects under {prefix}, expected {count}"
            ours, our_rss = best_of(args.repeat, listing, env)
            theirs, their_rss = best_of(args.repeat, ["find", str(root / prefix), "-type", "f"], env)
            stating, _ = best_of(args.repeat, ["find", str(root / prefix), "-type", "f", "-printf",
                                               "%s %T@ %p\n"], env)
            first_after, _ = first_line_after(listing, env)
            measured.append((count, ours, theirs, our_rss, their_rss, first_after, stating))
            print(f"  {prefix}: first {orjson.loads(first)['key']}, last {orjson.loads(last)['key']}")
        startup, startup_rss = best_of(args.repeat, [*FACTFLOW, "--help"], env)

        print()
        print(f"{'objects':>8} | {'factflow list':>13} | {'find -type f':>12} | {'ratio':>6} | "
              f"{'find -printf':>12} | {'ratio':>6} | {'factflow RSS':>12} | {'find RSS':>9} | {'first line':>10}")
        for count, ours, theirs, our_rss, their_rss, first_after, stating in measured:
            print(f"{count:>8} | {ours:>11.3f} s | {theirs:>10.3f} s | {ours / theirs:>5.2f}x | "
                  f"{stating:>10.3f} s | {ours / stating:>5.2f}x | "
                  f"{our_rss / 1024:>9.1f} MiB | {their_rss / 1024:>5.1f} MiB | {first_after:>8.3f} s")
        print("(find -printf '%s %T@ %p' stats every file, as a listing row with size and "
              "last_modified must; find -type f reads directories only)")
        print(f"factflow --help (start-up alone): {startup:.3f} s, {startup_rss / 1024:.1f} MiB")
        big = measured[-1]
        print()
        print(f"targets: ratio <= 2.00 -> {big[1] / big[2]:.2f}; memory flat (100k/10k RSS) -> "
              f"{measured[-1][3] / measured[0][3]:.2f}; first line < 0.2 s -> {big[5]:.3f} s")
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
