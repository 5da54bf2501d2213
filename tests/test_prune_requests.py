"""A prune plan's cost on S3 follows the executions it plans, not seven round trips each:
what the store holds about all of them (deletion records, journal markers, archive jobs,
who uses whom) is listed once. Counted at a proxy in front of a real S3 server."""

from __future__ import annotations

import orjson

from factflow_storage import create_storage_provider
from factflow_storage.retention.prune import prune
from listen_standin import ListenStandIn

EXECUTIONS = 40


def test_a_prune_dry_run_lists_each_execution_once_and_the_store_a_few_times(s3_server):
    bucket = s3_server.new_bucket()
    with create_storage_provider(f"minio://{bucket}", s3_server.options()) as writer:
        for n in range(EXECUTIONS):
            execution_id = f"old-{n:02d}"
            writer.write(f"executions/{execution_id}/route/stage/a.json", b"{}")
            writer.write_execution(execution_id, {"execution_id": execution_id, "status": "completed",
                                                  "started_at": f"2026-01-01T00:{n:02d}:00.000Z",
                                                  "finished_at": f"2026-01-01T00:{n:02d}:30.000Z"})
        # One execution that a later one depends on: its plan still finds the dependant.
        writer.write("executions/user/route/stage/b.json", b"{}",
                     metadata={"lineage": ["executions/old-00/route/stage/a.json"]})
        writer.write_execution("user", {"execution_id": "user", "status": "running",
                                        "started_at": "2026-01-02T00:00:00.000Z"})
    with ListenStandIn(s3_server.endpoint) as standin:
        options = dict(s3_server.options(), endpoint=standin.endpoint)
        with create_storage_provider(f"minio://{bucket}", options) as provider:
            standin.requests.clear()
            result = prune(provider, older_than=0)
        asked = list(standin.requests)
    rows = {row["execution_id"]: row for row in result["executions"]}
    assert len(rows) == EXECUTIONS - 1 and "old-00" not in rows
    assert all(row["objects"] == 1 and row["action"] == "delete" for row in rows.values())
    skipped = {row["execution_id"]: row for row in result["skipped"]}
    assert [ref["execution_id"] for ref in skipped["old-00"]["dependants"]] == ["user"]
    # Before the census: about seven requests per execution (280 here).
    assert len(asked) <= EXECUTIONS + 10, (len(asked), orjson.dumps(asked[:60]).decode())
