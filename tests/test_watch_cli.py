"""``factflow storage watch`` and ``factflow execution wait`` as a user runs them."""

from __future__ import annotations

import signal
import subprocess

import orjson

from factflow_storage.cli.watch import NEVER_STARTED, TIMED_OUT, WAITING
from factflow_storage.executions import set_status
from factflow_storage.service import StorageService
from server_fixture import running_server
from watch_support import Writer, assert_same_writes, cli_env, factflow, finish_cli, object_keys, start_cli_watch, write_objects

EXEC = "run-7"


def run(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(factflow(*args), env=env, capture_output=True, timeout=timeout)


def test_wait_exit_codes(file_storage):
    env = cli_env(file_storage)
    provider = file_storage.open()
    set_status(provider, EXEC, "running")
    Writer(provider, EXEC, range(3), status="completed", start_delay=0.8).start()
    done = run(env, "execution", "wait", EXEC, "--output", "json")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["status"] == "completed"

    set_status(provider, "run-8", "cancelled")
    done = run(env, "execution", "wait", "run-8")
    assert done.returncode == 3
    assert b"cancelled" in done.stdout


def test_wait_for_a_missing_record_is_bounded_by_the_global_timeout(file_storage):
    done = run(cli_env(file_storage), "--timeout", "1s", "execution", "wait", "nobody")
    assert done.returncode == 1
    stderr = done.stderr.decode()
    assert WAITING.format("nobody") in stderr
    assert NEVER_STARTED.format("1s", "nobody") in stderr
    assert "Traceback" not in stderr


def test_watch_waits_for_an_execution_that_has_not_started(file_storage):
    provider = file_storage.open()
    cli = start_cli_watch(cli_env(file_storage), "--execution", EXEC, "--timeout", "120s", verbose=True)
    cli.wait_until_live()
    set_status(provider, EXEC, "running")
    written = write_objects(provider, EXEC, range(4))
    set_status(provider, EXEC, "interrupted")
    rows, code, stderr = finish_cli(cli)
    assert WAITING.format(EXEC) in stderr
    assert_same_writes(object_keys(rows), written)  # each route in write order
    assert rows[-1]["status"] == "interrupted"
    assert code == 3


def test_watch_timeout_without_completion_is_an_error(file_storage):
    set_status(file_storage.open(), EXEC, "running")
    rows, code, stderr = finish_cli(start_cli_watch(cli_env(file_storage), "--execution", EXEC, "--timeout", "1s"))
    assert rows == []
    assert code == 1
    assert stderr.strip().endswith(TIMED_OUT.format("1s", EXEC))


def test_watch_table_lines_are_flushed_one_by_one(file_storage):
    provider = file_storage.open()
    set_status(provider, EXEC, "running")
    write_objects(provider, EXEC, range(2), pause=0)
    proc = subprocess.Popen(factflow("storage", "watch", "--execution", EXEC), env=cli_env(file_storage),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Both replayed lines reach the pipe while the watch is still running.
        first, second = proc.stdout.readline().decode(), proc.stdout.readline().decode()
        assert proc.poll() is None
        assert first.split()[1:] == ["7", f"executions/{EXEC}/alpha/parse/m00000.json"]
        assert second.split()[2] == f"executions/{EXEC}/beta/parse/m00001.json"
        set_status(provider, EXEC, "completed")
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert out.decode() == f"execution {EXEC} completed\n"
    assert proc.returncode == 0


def test_ctrl_c_ends_the_watch_cleanly(file_storage):
    set_status(file_storage.open(), EXEC, "running")
    cli = start_cli_watch(cli_env(file_storage), "--execution", EXEC, verbose=True)
    cli.wait_until_live()
    cli.proc.send_signal(signal.SIGINT)
    rows, code, stderr = finish_cli(cli, timeout=30)
    assert code == 130
    assert "Traceback" not in stderr
    assert rows == []


def test_api_mode_prints_the_same_bytes_as_direct_mode(file_storage):
    provider = file_storage.open()
    set_status(provider, EXEC, "running")
    write_objects(provider, EXEC, range(9), pause=0)
    set_status(provider, EXEC, "completed")
    direct = run(cli_env(file_storage), "storage", "watch", "--execution", EXEC, "--output", "json")
    with running_server(StorageService(provider)) as url:
        remote = run(cli_env(file_storage, FACTFLOW_API_URL=url), "storage", "watch", "--execution", EXEC,
                     "--output", "json")
    assert direct.returncode == remote.returncode == 0
    assert direct.stdout == remote.stdout
    assert len(direct.stdout.splitlines()) == 10


def test_several_executions_end_when_all_have_finished(file_storage):
    provider = file_storage.open()
    for execution_id in ("e-a", "e-b"):
        set_status(provider, execution_id, "running")
    cli = start_cli_watch(cli_env(file_storage), "--execution", "e-a", "--execution", "e-b", verbose=True)
    cli.wait_until_live()
    set_status(provider, "e-a", "completed")
    written = write_objects(provider, "e-b", range(3))
    set_status(provider, "e-b", "failed")
    rows, code, stderr = finish_cli(cli)
    assert_same_writes(object_keys(rows), written)  # each route in write order
    assert [row for row in rows if row["event"] == "execution.completed"] == [
        {"event": "execution.completed", "execution_id": "e-a", "status": "completed"},
        {"event": "execution.completed", "execution_id": "e-b", "status": "failed"}]
    assert code == 3, stderr
