"""``factflow storage get KEY`` with no options runs without click, and says exactly what
the click path says (same bytes, same errors, same exit codes) in every other case."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROBE = r"""
import runpy, sys
sys.argv = ["factflow", *sys.argv[1:]]
try:
    runpy.run_module("factflow_storage", run_name="__main__")
finally:
    print("CLICK=" + str("click" in sys.modules), file=sys.stderr)
"""

KEY = "exec-1/route/stage/data.bin"
DATA = os.urandom(70_000)


@pytest.fixture
def stored(file_storage):
    provider = file_storage.open()
    provider.write(KEY, DATA)
    provider.close()
    return file_storage


def _run(env: dict, *args: str) -> tuple[int, bytes, list[str]]:
    run = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, env=env, timeout=60)
    return run.returncode, run.stdout, run.stderr.decode().splitlines()


def test_a_plain_get_imports_no_click(stored):
    code, out, err = _run(stored.cli_env(), "storage", "get", KEY)
    assert (code, out == DATA, err) == (0, True, ["CLICK=False"])


@pytest.mark.parametrize("key", ["exec-1/route/stage/missing.bin", "../escape", "exec-1//x", "a" * 2000])
def test_errors_are_the_click_paths(stored, key):
    quick = _run(stored.cli_env(), "storage", "get", key)
    by_click = _run(stored.cli_env(), "--output", "table", "storage", "get", key)
    assert quick[0] != 0
    assert quick[:2] == by_click[:2]
    assert quick[2][:-1] == by_click[2][:-1]  # all but the probe's line
    assert "Traceback" not in "\n".join(quick[2])


@pytest.mark.parametrize("setting", [{"FACTFLOW_STORAGE_URI": "bogus://x"}, {"FACTFLOW_API_URL": "http://127.0.0.1:9"},
                                     {"FACTFLOW_CONFIG": "/nonexistent/factflow.toml"},
                                     {"FACTFLOW_STORAGE_URI": "file:///nonexistent/factflow-root"}])
def test_settings_the_quick_path_does_not_take_go_to_click(stored, setting):
    env = {**stored.cli_env(), **setting}
    quick = _run(env, "storage", "get", KEY)
    by_click = _run(env, "--output", "table", "storage", "get", KEY)
    assert quick[:2] == by_click[:2]
    assert quick[2][:-1] == by_click[2][:-1]
    assert quick[2][-1] == "CLICK=True"


def test_options_go_to_click(stored):
    code, out, err = _run(stored.cli_env(), "storage", "get", KEY, "--output", "json")
    assert code == 0 and err[-1] == "CLICK=True"
    assert b'"key":"exec-1/route/stage/data.bin"' in out


def test_ctrl_c_exits_130_without_a_traceback(stored):
    import signal

    # One byte read proves get is copying; then nobody reads, so it blocks on the pipe (the
    # object outsizes a pipe's buffer) and gets SIGINT there.
    proc = subprocess.Popen([sys.executable, "-m", "factflow_storage", "storage", "get", KEY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=stored.cli_env())
    assert proc.stdout.read(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert b"Traceback" not in err
