"""Console benchmark: how long each view of the web console takes to show its data, in
headless Chromium, on an execution of 10 000 objects.

    python3 bench/console_bench.py [--objects 10000] [--repeat 3]

Lays out a filesystem storage (``list_bench.build_tree``: one execution, ``e000``, of N
objects over three routes and five stages, each stage a prefix of N/5 objects), marks
the execution completed, serves it with ``factflow serve``'s server in this process and
opens each view by its deep link in a fresh Chromium (the test suite's driver,
``tests/console_support.py``). For each view it prints the best of ``--repeat`` of:

- ``ready``: from navigation to the view showing its data (``<main data-ready>``), as the
  test driver sees it, page load and module fetches included;
- ``data``: the part the view itself spends (its API calls and rendering; ``data-load-ms``).

The object view's children, which load after the view shows, are timed until they are
listed. The live view is measured on the same execution marked running: the time until the
replay of every existing object has been counted (``objects seen: N``).

Plus the console's static weight (all files under ``server/console``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from console_support import Console, open_browser, temp_dirs  # noqa: E402
from list_bench import build_tree  # noqa: E402

from factflow_storage import create_storage_provider  # noqa: E402
from factflow_storage.server.app import create_server, stop_server  # noqa: E402
from factflow_storage.service import StorageService  # noqa: E402

EXECUTION = "e000"


def measure(console: Console, route: str, view: str, repeat: int) -> tuple[float, int]:
    best_ready, best_data = float("inf"), 0
    for _ in range(repeat):
        console.driver.get("about:blank")
        started = time.perf_counter()
        shown = console.open(route, view=view, timeout=120)
        ready = time.perf_counter() - started
        if ready < best_ready:
            best_ready, best_data = ready, shown["load_ms"]
    return best_ready, best_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    weight = sum(path.stat().st_size for path in (REPO / "factflow_storage/server/console").iterdir())
    with tempfile.TemporaryDirectory(prefix="console-bench-") as scratch:
        work = Path(scratch)
        started = time.perf_counter()
        build_tree(work / "storage", args.objects)
        print(f"laid out {args.objects} objects in {time.perf_counter() - started:.1f} s")
        provider = create_storage_provider(f"file://{work / 'storage'}", {})
        service = StorageService(provider)
        service.set_execution_status(EXECUTION, "completed")
        server = create_server(service, "127.0.0.1", 0, threads=8)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        downloads, profile = temp_dirs(work)
        shots = work / "shots"
        shots.mkdir()
        console = Console(open_browser(downloads, profile), f"http://127.0.0.1:{server.effective_port}", shots,
                          downloads)
        stage = f"executions/{EXECUTION}/markdown_processor/chunker/"
        try:
            console.open(f"#/b/{stage}", view="browse")
            next_page = console.find("#next-page").get_attribute("href").split("#", 1)[1]
            key = console.find("#listing tr[data-key] a").get_attribute("href").split("#", 1)[1]
            views = [("executions", "#/", "executions"), ("execution", f"#/e/{EXECUTION}", "execution"),
                     ("browse, first page", f"#/b/{stage}", "browse"), ("browse, next page", "#" + next_page, "browse"),
                     ("object", "#" + key, "object")]
            print(f"{'view':<22} {'ready':>9} {'data':>9}")
            for name, route, view in views:
                ready, data = measure(console, route, view, args.repeat)
                print(f"{name:<22} {ready * 1000:7.0f} ms {data:6d} ms")
            # The children come after the object view shows: one scan of the execution's metadata.
            best = float("inf")
            for _ in range(args.repeat):
                console.driver.get("about:blank")
                began = time.perf_counter()
                console.open("#" + key, view="object", timeout=120)
                console.wait_for(lambda: console.find("#children-section").get_attribute("data-loaded") == "true",
                                 timeout=120, poll=0.02)
                best = min(best, time.perf_counter() - began)
            print(f"{'object, children shown':<22} {best * 1000:7.0f} ms")
            service.set_execution_status(EXECUTION, "running")
            best = float("inf")
            for _ in range(args.repeat):
                console.driver.get("about:blank")
                began = time.perf_counter()
                console.open(f"#/e/{EXECUTION}", view="execution", timeout=120)
                console.wait_for(lambda: console.find("#live-count").text == str(args.objects), timeout=120, poll=0.05)
                best = min(best, time.perf_counter() - began)
            print(f"{'live, replay counted':<22} {best * 1000:7.0f} ms")
        finally:
            console.driver.quit()
            stop_server(server)
            provider.close()
    print(f"static weight: {weight} bytes ({weight / 1024:.1f} KiB) in "
          f"{len(list((REPO / 'factflow_storage/server/console').iterdir()))} files, no build step")


if __name__ == "__main__":
    main()
