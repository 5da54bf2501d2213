"""Running the CLI in direct mode and over HTTP side by side, for tests that compare them.

``both_modes`` opens one storage, serves it on loopback and yields a ``Modes``: its
``run`` invokes ``factflow`` through click's runner in either environment, ``both`` runs
a command in each and asserts they printed the same bytes and exited alike. The
``modes`` and ``demo`` fixtures (conftest.py) wrap it for tests that take ``storage``.
``on_a_terminal`` runs ``factflow`` as a subprocess whose output is a pseudo-terminal.
"""

from __future__ import annotations

import contextlib
import os
import pty
import subprocess
import sys

from click.testing import CliRunner

from factflow_storage import metadata
from factflow_storage.cli.main import cli
from factflow_storage.service import StorageService
from server_fixture import running_server

FROZEN = "2026-01-02T03:04:05.678Z"
EXEC = "ex1"
SITEMAP = f"executions/{EXEC}/sitemap_scraper/sitemap/sitemap.json"
HTML = f"executions/{EXEC}/sitemap_scraper/web_scraper/msg-0002.html.gz"
MARKDOWN = f"executions/{EXEC}/markdown_processor/html_to_markdown/msg-0001.md"


class Modes:
    def __init__(self, storage, url: str, never: str):
        self.storage = storage
        self.url = url
        self.never = never  # the local storage API mode must never open
        base = {name: None for name in os.environ if name.startswith("FACTFLOW_")}
        self.direct_env = {**base, **storage.env, "FACTFLOW_STORAGE_URI": storage.uri}
        self.api_env = {**base, "FACTFLOW_STORAGE_URI": f"file://{never}", "FACTFLOW_API_URL": url}

    def run(self, env: dict, args: list[str], stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        result = CliRunner().invoke(cli, args, input=stdin, env=env, catch_exceptions=False)
        return result.exit_code, result.stdout_bytes, result.stderr_bytes

    def both(self, args: list[str], stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        direct = self.run(self.direct_env, args, stdin)
        remote = self.run(self.api_env, args, stdin)
        assert remote == direct, f"{args}: direct {direct!r}\n   api {remote!r}"
        assert not os.path.exists(self.never)
        return direct

    def api_flag(self, args: list[str]) -> tuple[int, bytes, bytes]:
        """The same command with ``--api URL`` on the command line instead of the env."""
        env = {**self.api_env, "FACTFLOW_API_URL": None}
        return self.run(env, ["--api", self.url, *args])


@contextlib.contextmanager
def both_modes(target, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray ./factflow.toml
    monkeypatch.setattr(metadata, "now_rfc3339", lambda: FROZEN)  # the one clock every module reads
    with target.open() as provider, running_server(StorageService(provider)) as url:
        yield Modes(target, url, str(tmp_path / "never-opened"))


def on_a_terminal(env: dict, *args: str) -> tuple[int, bytes]:
    """Run with stdout on a pseudo-terminal; returns (exit code, what the terminal got)."""
    leader, follower = pty.openpty()
    full = {**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "factflow_storage", *args], env=full, stdout=follower,
                            stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return proc.wait(timeout=60), seen
