"""The write journal stays small: under a burst of writes its markers are pruned by the
writers themselves, and a finished execution leaves none (``rclone size`` then counts
only objects and records)."""

from __future__ import annotations

import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from factflow_storage import create_storage_provider
from factflow_storage.executions import set_status
from factflow_storage.providers import s3_journal as journal

pytestmark = pytest.mark.s3

WRITES = 2000
KEEP_MS = 500  # a short window, so the burst outlasts it many times over
PRUNE_EVERY = 50


def test_markers_stay_bounded_under_a_burst_and_go_when_the_execution_finishes(s3_server, monkeypatch):
    monkeypatch.setattr(journal, "KEEP_MS", KEEP_MS, raising=False)
    bucket = s3_server.new_bucket()
    provider = create_storage_provider(f"minio://{bucket}", s3_server.options())
    if s3_server.kind == "minio":  # MinIO has the listen API; exercise the journal anyway
        journal.journal_of(provider).enabled = True
    set_status(provider, "B1", "running")
    finished: list[float] = []
    lock = threading.Lock()

    def write(i: int) -> None:
        provider.write(f"executions/B1/r/s/m{i:05d}", b"x")
        with lock:
            finished.append(time.time())

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(WRITES)))
    end = time.time()
    markers = len(list(provider.list_records("journal/B1/")))
    recent = sum(1 for moment in finished if moment >= end - KEEP_MS / 1000 - 1.0)
    print(f"\n{WRITES} writes in {end - finished[0]:.1f} s: {markers} markers left "
          f"({recent} written in the last {KEEP_MS / 1000 + 1:.1f} s)")
    assert markers <= recent + PRUNE_EVERY
    assert markers < WRITES // 4

    set_status(provider, "B1", "completed")
    assert list(provider.list_records("journal/")) == []
    done = subprocess.run(["rclone", "size", "--json", f"ffs3:{bucket}"], env=s3_server.tool_env(),
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # the objects, the execution record, its index entry and the index's marker
    assert orjson.loads(done.stdout)["count"] == WRITES + 3
    provider.close()
