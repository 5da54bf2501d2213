"""What a new user reads when something does not go as meant: each message names the
way out (the setting, the command) and counts in English."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from factflow_storage.cli.main import cli
from factflow_storage.service import StorageService
from server_fixture import running_server


def run(env: dict, *args: str) -> tuple[int, str, str]:
    base = {name: None for name in os.environ if name.startswith("FACTFLOW_")}
    result = CliRunner().invoke(cli, list(args), env={**base, **env}, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def store(tmp_path, monkeypatch) -> dict:
    monkeypatch.chdir(tmp_path)
    return {"FACTFLOW_STORAGE_URI": f"file://{tmp_path / 'storage'}"}


def put(env: dict, key: str, data: str = "x") -> None:
    code, _, err = run(env, "storage", "put", key, "--file", "-") if False else (0, "", "")
    result = CliRunner().invoke(cli, ["storage", "put", key], input=data.encode(), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("token", [None, "wrong"], ids=["no token", "wrong token"])
def test_a_refused_token_names_the_setting_that_sends_one(file_storage, token):
    with running_server(StorageService(file_storage.open()), token="s3cret") as url:
        env = {"FACTFLOW_API_URL": url, "FACTFLOW_API_TOKEN": token}
        code, out, err = run(env, "storage", "browse")
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1 and err.startswith("Error: ") and "FACTFLOW_API_TOKEN" in err, err


def test_get_of_a_prefix_says_it_is_a_prefix(store):
    put(store, "executions/X/r/s/a")
    for command in ("get", "metadata"):
        code, out, err = run(store, "storage", command, "executions/X/")
        assert (code, out) == (1, "")
        assert err == "Error: invalid key 'executions/X/': is a prefix (use browse or list)\n"
    # The real entry point, whose `get` without options starts on a path of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    done = subprocess.run([sys.executable, "-m", "factflow_storage", "storage", "get", "executions/X/"],
                          env={**env, **store}, capture_output=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr == b"Error: invalid key 'executions/X/': is a prefix (use browse or list)\n"


def test_browse_of_a_prefix_that_holds_nothing_says_so(store):
    put(store, "executions/X/r/s/a")
    assert run(store, "storage", "browse", "nosuch/") == (0, "", "no objects under 'nosuch/'\n")
    code, out, err = run(store, "storage", "browse", "nosuch/", "--output", "json")
    assert (code, err) == (0, "") and '"objects":[]' in out.replace(" ", "")


def test_one_object_is_counted_in_the_singular(store, tmp_path):
    put(store, "executions/X/r/s/a")
    code, out, err = run(store, "storage", "download", "X", "--output-dir", str(tmp_path / "out"))
    assert code == 0, err
    assert out.startswith("downloaded 1 object (")


def test_config_show_gives_the_storage_path_it_resolves_to(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run({}, "config", "show")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("storage_uri"))
    resolved = f"file://{Path(os.getcwd()) / 'output' / 'storage'}"
    assert row.split()[1] == resolved and "file://./" not in out
