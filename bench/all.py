"""Every row of the performance table, in one run, printed as one markdown table.

    python3 bench/all.py                     # full sizes (tens of minutes on 2 cores)
    python3 bench/all.py --quick             # small sizes: a smoke run, not figures
    python3 bench/all.py --only fs-list,serve-p99 --repeat 5

Each script under ``bench/`` has ``rows(only, quick, repeat)``; this asks each for its
rows in the table's order. Run it on a quiet machine: the ratios compare factflow with
its reference from the same run, and still move with the load of everything else.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import REPEAT, Row, table  # noqa: E402

# The table order; each script reports the rows it names in its ROWS.
MODULES = ("s3_bench", "startup_bench", "list_bench", "get_bench", "download_bench", "serve_bench", "write_bench",
           "executions_bench", "copy_bench")
ORDER = ("s3-get-4k", "help-installed", "help-pyz", "list-pyz", "fs-list", "fs-get-pipe", "fs-get-file",
         "s3-download-small", "api-download-large", "serve-mix", "serve-p99", "s3-list", "fs-write-small",
         "fs-write-batch", "s3-write-small", "exec-page-cli", "exec-page-http", "exec-page-http-list",
         "exec-list-all", "exec-prune-plan",
         "exec-console-home", "exec-live-open", "exec-live-open-big",
         "copy-fs-s3", "copy-rerun")


def run(only: set[str] | None, quick: bool, repeat: int) -> list[Row]:
    rows: list[Row] = []
    for name in MODULES:
        module = importlib.import_module(name)
        if only is not None and not only & set(module.ROWS):
            continue
        started = time.perf_counter()
        print(f"{name}: {', '.join(r for r in module.ROWS if only is None or r in only)} ...",
              file=sys.stderr, flush=True)
        done = module.rows(only=only, quick=quick, repeat=repeat)
        rows.extend(done)
        print(f"{name}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        # Each script's rows as they come: a run cut short still leaves its figures.
        print(table(done, title=f"{name} (partial)"), file=sys.stderr, flush=True)
    return sorted(rows, key=lambda row: ORDER.index(row.id))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs, for a smoke run")
    parser.add_argument("--only", default=None, help=f"comma-separated row ids, of: {', '.join(ORDER)}")
    parser.add_argument("--repeat", type=int, default=REPEAT, help="runs of each side per row (at least 3)")
    args = parser.parse_args()
    only = None
    if args.only:
        only = {item.strip() for item in args.only.split(",") if item.strip()}
        unknown = only - set(ORDER)
        if unknown:
            parser.error(f"unknown row id(s): {', '.join(sorted(unknown))}; known: {', '.join(ORDER)}")
    if args.repeat < 3:
        parser.error("--repeat must be at least 3: the table reports medians")
    rows = run(only, args.quick, args.repeat)
    title = "factflow performance (--quick: sizes too small for figures)" if args.quick else "factflow performance"
    print(table(rows, title=title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
