"""The write journal stays small: under a burst of writes its markers are pruned by the
writers themselves, and a finished execution leaves none (``rclone size`` then counts
only objects and records)."""

from __future__ import annotations

import subprocess
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
WRITERS = 4


def test_markers_stay_bounded_under_a_burst_and_go_when_the_execution_finishes(s3_server, monkeypatch):
    monkeypatch.setattr(journal, "KEEP_MS", KEEP_MS, raising=False)
    bucket = s3_server.new_bucket()
    provider = create_storage_provider(f"minio://{bucket}", s3_server.options())
    if s3_server.kind == "minio":  # MinIO has the listen API; exercise the journal anyway
        journal.journal_of(provider).enabled = True
    set_status(provider, "B1", "running")
    cutoffs: list[int] = []
    prune = journal.WriteJournal.prune

    def recording(self, execution_id: str) -> int:
        cutoffs.append(int(time.time() * 1000) - KEEP_MS)
        return prune(self, execution_id)

    monkeypatch.setattr(journal.WriteJournal, "prune", recording)
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda i: provider.write(f"executions/B1/r/s/m{i:05d}", b"x"), range(WRITES)))
    stamps = [journal.parse_marker(name, "B1")[0] for name in provider.list_records("journal/B1/")]
    # Measured against the last prune's cutoff, not the clock: a stalled server slows the
    # burst down without changing what the prunes must leave.
    older = [stamp for stamp in stamps if stamp < max(cutoffs)]
    print(f"\n{WRITES} writes: {len(cutoffs)} prunes, {len(stamps)} markers left, {len(older)} older "
          "than the last prune's cutoff")
    # Each writer's marker may have been named before that cutoff and stored after the
    # prune's listing; every other older marker was removed.
    assert len(older) <= WRITERS
    assert len(cutoffs) >= WRITES // PRUNE_EVERY - 1
    assert len(stamps) < WRITES // 4

    set_status(provider, "B1", "completed")
    assert list(provider.list_records("journal/")) == []
    done = subprocess.run(["rclone", "size", "--json", f"ffs3:{bucket}"], env=s3_server.tool_env(),
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # the objects, the execution record, its index entry and the index's marker
    assert orjson.loads(done.stdout)["count"] == WRITES + 3
    provider.close()
