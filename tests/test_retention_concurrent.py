"""Two deleters of the same executions at once (every provider; real radosgw for S3):
prunes and deletes in separate processes, one held between its mark and its deletion
while the other runs; a claimed deleter killed with SIGKILL and the deleter that takes
over from it; the claim's create-only record; and writers racing two prunes for a minute."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta

import orjson
import pytest

import factflow_storage
from factflow_storage import metadata
from factflow_storage.errors import Conflict
from factflow_storage.retention.delete import list_deletions
from retention_support import KILLED_PRUNE, raw_names, write_execution
from waiting import eventually

PRUNE = ["storage", "prune", "--older-than", "0s", "--status", "completed", "--yes", "-o", "json"]
DELETE = ["execution", "delete", "X1", "X2", "--yes", "-o", "json"]
COMMANDS = {"prune": PRUNE, "delete": DELETE}

# A factflow CLI that stops once it has marked its first execution ``deleting`` and goes
# on when told: the other deleter runs in between.
HELD_CLI = textwrap.dedent("""
    import pathlib, sys, time
    from factflow_storage.cli.main import cli
    from factflow_storage.retention import delete

    marked, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    begin = delete.begin_deletion

    def begin_then_hold(*args, **kwargs):
        record = begin(*args, **kwargs)
        if not marked.exists():
            marked.write_text("marked")
            deadline = time.monotonic() + 300
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        return record

    delete.begin_deletion = begin_then_hold
    cli.main(sys.argv[3:], prog_name="factflow")
""")


def child_env(storage) -> dict:
    env = storage.cli_env()
    package_root = os.path.dirname(os.path.dirname(factflow_storage.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return env


def factflow(storage, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factflow_storage", *args], env=child_env(storage),
                          capture_output=True, check=False, timeout=300)


def missing_parents(provider) -> list[str]:
    gone = []
    for info in provider.list("executions/"):
        lineage = provider.metadata(info.key).get("lineage") or []
        gone += [parent for parent in lineage if not provider.exists(parent)]
    return gone


def deleted_objects(result: dict) -> int:
    return sum(row["deleted"]["objects"] for row in result["executions"] if "deleted" in row)


@pytest.mark.parametrize("first,second", [("prune", "prune"), ("prune", "delete"), ("delete", "delete")])
def test_two_deleters_of_the_same_executions_delete_each_once(storage, provider, tmp_path, first, second):
    write_execution(provider, "K", count=2)
    write_execution(provider, "E", count=1, lineage_into="K", status="running")  # keeps K
    for name in ("X1", "X2"):
        write_execution(provider, name, count=3)
    marked, go = tmp_path / "marked", tmp_path / "go"
    held = subprocess.Popen([sys.executable, "-c", HELD_CLI, str(marked), str(go), *COMMANDS[first]],
                            env=child_env(storage), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        eventually(lambda: marked.exists() or held.poll() is not None, "the first deleter's mark")
        assert held.poll() is None, held.communicate()
        other = factflow(storage, *COMMANDS[second])
        # a writer of the kept execution names K meanwhile
        provider.write("executions/E/route/use/late.txt", b"late", {"lineage": ["executions/K/route/fetch/m0001.json"]})
    finally:
        go.write_text("go")
        out, err = held.communicate(timeout=300)
    assert held.returncode == 0, err.decode()
    assert other.returncode == 0, other.stderr.decode()
    assert b"Traceback" not in err + other.stderr
    results = [orjson.loads(out), orjson.loads(other.stdout)]

    # each execution counted once between the two, and deleted whole
    assert sum(result["totals"]["executions"] for result in results) == 2, results
    assert sum(result["totals"]["objects"] for result in results) == 12, results
    assert sum(deleted_objects(result) for result in results) == 12, results
    records = {record["execution_id"]: record for record in list_deletions(provider)}
    assert sorted(records) == ["X1", "X2"]
    assert [(r["state"], r["deleted"]["objects"]) for r in records.values()] == [("deleted", 6)] * 2, records
    assert not any(name.startswith(("executions/X", "_factflow/executions/X")) for name in raw_names(provider))
    # the one that did not delete them says who does
    waiting = results[1]
    said = [row.get("reason") or row["action"] for row in waiting.get("skipped", []) + waiting["executions"]
            if row["execution_id"] in ("X1", "X2")]
    assert len(said) == 2 and all("being deleted by" in text for text in said), waiting
    # what the kept executions name is all there
    assert missing_parents(provider) == []
    assert provider.read("executions/E/route/use/late.txt") == b"late"
    assert provider.read_execution("K")["status"] == "completed"
    assert not any("claims" in name for name in raw_names(provider))


def kill_a_claimed_prune(storage, provider, host: str) -> set[str]:
    """Run a prune of X that kills itself mid-deletion; the claim names it on ``host``."""
    write_execution(provider, "keep", count=2)
    before = raw_names(provider)
    write_execution(provider, "X", count=10, status="failed")
    child = subprocess.run([sys.executable, "-c", KILLED_PRUNE, host], env=child_env(storage),
                           capture_output=True, check=False, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    assert provider.read_execution("X")["status"] == "deleting"
    assert [name for name in raw_names(provider) if "claims" in name], "no claim left"
    return before


def prune_failed(storage) -> subprocess.CompletedProcess:
    return factflow(storage, "storage", "prune", "--older-than", "0s", "--status", "failed", "--yes", "-o", "json")


def finished_once(provider, before: set[str], result: dict) -> None:
    [row] = result["executions"]
    assert (row["execution_id"], row["action"]) == ("X", "resume"), result
    assert list(provider.list("executions/X/")) == []
    assert raw_names(provider) - before == {"_factflow/deletions/X.json"}  # no claim left either
    [record] = list_deletions(provider)
    assert record["state"] == "deleted" and record["deleted"]["objects"] == 20, record


def test_a_deleter_killed_on_this_host_is_taken_over_at_once(storage, provider):
    import socket

    before = kill_a_claimed_prune(storage, provider, socket.gethostname())
    again = prune_failed(storage)  # its process is gone: no lease to wait out
    assert again.returncode == 0, again.stderr.decode()
    finished_once(provider, before, orjson.loads(again.stdout))


def test_a_deleter_on_another_host_is_taken_over_once_its_lease_expires(storage, provider, monkeypatch):
    from click.testing import CliRunner

    from factflow_storage.cli.main import cli
    from factflow_storage.retention import deletion_claims

    before = kill_a_claimed_prune(storage, provider, "elsewhere")
    env = {name: None for name in os.environ if name.startswith("FACTFLOW_")}
    env.update(storage.env, FACTFLOW_STORAGE_URI=storage.uri)
    args = ["storage", "prune", "--older-than", "0s", "--status", "failed", "--yes", "-o", "json"]
    waited = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert waited.exit_code == 0, waited.stderr
    result = orjson.loads(waited.stdout)
    assert result["executions"] == [] and result["totals"]["executions"] == 0, result
    [skipped] = result["skipped"]
    assert skipped["execution_id"] == "X" and "being deleted by" in skipped["reason"], skipped
    assert "elsewhere" in skipped["reason"]
    assert provider.read_execution("X")["status"] == "deleting"

    later = datetime.fromisoformat(metadata.now_rfc3339().replace("Z", "+00:00")) + timedelta(
        seconds=deletion_claims.LEASE + 1)
    monkeypatch.setattr(metadata, "now_rfc3339", lambda: metadata.format_time(later))
    taken = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert taken.exit_code == 0, taken.stderr
    finished_once(provider, before, orjson.loads(taken.stdout))


def test_a_claim_record_is_created_by_exactly_one_of_racing_creators(provider):
    from factflow_storage.errors import PreconditionFailed
    from factflow_storage.protocol import CREATE_ONLY

    won, lost = [], []
    ready = threading.Barrier(8)

    def create(n: int) -> None:
        ready.wait(60)
        try:
            provider.put_record("deletion-claims/R/0000000001.json", b"%d" % n, condition=CREATE_ONLY)
            won.append(n)
        except PreconditionFailed:
            lost.append(n)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(won) == 1 and len(lost) == 7, (won, lost)
    assert provider.get_record("deletion-claims/R/0000000001.json") == b"%d" % won[0]
    assert list(provider.list_records("deletion-claims/R/")) == ["deletion-claims/R/0000000001.json"]


# A prune run again and again until told to stop; one JSON line per run.
PRUNER = textwrap.dedent("""
    import os, pathlib, sys
    import orjson
    from factflow_storage import create_storage_provider
    from factflow_storage.retention.prune import prune

    stop = pathlib.Path(sys.argv[1])
    provider = create_storage_provider(os.environ["FACTFLOW_STORAGE_URI"])
    while not stop.exists():
        result = prune(provider, older_than=0, statuses="completed", confirm=True)
        done = {row["execution_id"]: row["deleted"]["objects"] for row in result["executions"] if "deleted" in row}
        busy = [row["execution_id"] for row in result["skipped"] if "being deleted by" in row["reason"]]
        sys.stdout.write(orjson.dumps({"deleted": done, "busy": busy}).decode() + "\\n")
        sys.stdout.flush()
""")
RACE_SECONDS = 30


def test_writers_and_two_prunes_together_lose_nothing_a_kept_execution_names(storage, provider, tmp_path):
    """For RACE_SECONDS per provider (a minute in all over the two: the suite runs each
    provider, and a minute each would double the retention tests' time for no new
    interleaving kind): executions finish, writers of running executions name their
    objects, and two prune processes delete finished ones. Afterwards every lineage parent
    a stored object names is still there, each refused write said why, and each
    execution was deleted once, whole, by one of the two. Nothing asserts on time: on a
    busy machine the race just runs fewer rounds."""
    stop = threading.Event()
    finished: list[str] = []
    counts = {"written": 0, "refused": 0}
    failures: list[BaseException] = []

    def guarded(work):
        def body():
            try:
                work()
            except BaseException as err:  # reported by the test thread
                failures.append(err)
                stop.set()
        return body

    def producer():
        own = storage.open()
        for n in itertools.count():
            if stop.is_set():
                return
            write_execution(own, f"C{n:04d}", count=2)
            finished.append(f"C{n:04d}")

    def writer(name):
        def work():
            own = storage.open()
            chooser = random.Random(name)
            for n in itertools.count():
                if stop.is_set():
                    return
                if not finished or chooser.random() < 0.7:  # most writes name nothing: prune has work
                    own.write(f"executions/{name}/route/own/m{n:05d}.txt", b"x")
                    counts["written"] += 1
                    continue
                parent = f"executions/{chooser.choice(finished[-10:])}/route/fetch/m0000.json"
                if not own.exists(parent):  # only names what it has just seen: a loss is a prune's
                    continue
                try:
                    own.write(f"executions/{name}/route/use/m{n:05d}.txt", b"x", {"lineage": [parent]})
                    counts["written"] += 1
                except Conflict as err:
                    assert "being deleted" in str(err) or "was deleted" in str(err), err
                    counts["refused"] += 1
        return work

    for name in ("W1", "W2"):
        write_execution(provider, name, count=0, status="running")
    told = tmp_path / "stop"
    pruners = [subprocess.Popen([sys.executable, "-c", PRUNER, str(told)], env=child_env(storage),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    threads = [threading.Thread(target=guarded(work)) for work in (producer, writer("W1"), writer("W2"))]
    try:
        for thread in threads:
            thread.start()
        stop.wait(RACE_SECONDS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
        told.write_text("stop")
        outputs = [pruner.communicate(timeout=300) for pruner in pruners]
    assert not failures, failures
    for pruner, (_out, err) in zip(pruners, outputs, strict=True):
        assert pruner.returncode == 0 and b"Traceback" not in err, err.decode()[-3000:]

    runs = [[orjson.loads(line) for line in out.splitlines()] for out, _err in outputs]
    by_pruner = [{eid: objects for run in each for eid, objects in run["deleted"].items()} for each in runs]
    assert not set(by_pruner[0]) & set(by_pruner[1]), "an execution deleted by both prunes"
    reported = {**by_pruner[0], **by_pruner[1]}
    records = {record["execution_id"]: record for record in list_deletions(provider)}
    assert sorted(records) == sorted(reported)
    assert all(record["state"] == "deleted" and record["deleted"]["objects"] == 4 == reported[eid]
               for eid, record in records.items()), records
    assert missing_parents(provider) == []
    assert not any("claims" in name or name.startswith(tuple(f"executions/{eid}/" for eid in records))
                   for name in raw_names(provider))
    assert counts["written"] > 20 and reported, (counts, len(reported))


def test_the_console_says_who_is_deleting_an_execution_it_was_asked_to_delete(storage, tmp_path):
    from console_support import Console, open_browser, serve_demo, temp_dirs

    demo = "demo-console"
    marked, go = tmp_path / "marked", tmp_path / "go"
    with serve_demo(storage, demo) as (url, service):
        downloads, profile = temp_dirs(tmp_path)
        (tmp_path / "shots").mkdir()
        console = Console(open_browser(downloads, profile), url, tmp_path / "shots", downloads)
        held = None
        try:
            console.open(f"#/e/{demo}", view="execution")
            console.find("#retention-plan").click()
            console.wait_for(lambda: console.find("#retention").get_attribute("data-state") == "planned")
            held = subprocess.Popen([sys.executable, "-c", HELD_CLI, str(marked), str(go), "execution", "delete",
                                     demo, "--yes", "-o", "json"], env=child_env(storage),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            eventually(lambda: marked.exists() or held.poll() is not None, "the other deleter's mark")
            console.find("#retention-delete").click()
            console.find("#retention-confirm-yes").click()
            console.wait_for(lambda: console.find("#retention").get_attribute("data-state") == "refused")
            said = console.find("#retention-busy").text
            assert said.startswith("Not deleted: being deleted by ") and f"(pid {held.pid})" in said, said
        finally:
            go.write_text("go")
            if held is not None:
                out, err = held.communicate(timeout=300)
            console.driver.quit()
        assert held.returncode == 0, err.decode()
        [row] = orjson.loads(out)["executions"]
        assert row["deleted"]["objects"] == 16, row
        assert list(service.provider.list(f"executions/{demo}/")) == []
