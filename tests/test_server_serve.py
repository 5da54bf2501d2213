"""``factflow serve`` as a user runs it: a subprocess, the port it prints, curl against
every endpoint of the spec over the demo data, a token, and a clean stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

EXEC = "demo-1"
SITEMAP = f"executions/{EXEC}/sitemap_scraper/sitemap/sitemap.json"
PAGE = f"executions/{EXEC}/sitemap_scraper/web_scraper/msg-0001.html.gz"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    env.update(extra)
    return env


def factflow(*args: str, env: dict[str, str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factflow_storage", *args], env=env, input=stdin,
                          capture_output=True, timeout=60)


@contextlib.contextmanager
def serving(*args: str, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "factflow_storage", "serve", "--port", "0", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("serving on http://"), line + proc.stderr.read().decode()
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        proc.stdout.close()
        proc.stderr.close()


def curl(*args: str) -> tuple[int, bytes]:
    """Status and body; curl's own -w line is the last line of its output."""
    out = subprocess.run(["curl", "-sS", "-g", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True,
                         timeout=30, check=True).stdout
    body, _, code = out.rpartition(b"\n")
    return int(code), body


@pytest.fixture
def demo_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = clean_env(FACTFLOW_STORAGE_URI=f"file://{tmp_path / 'storage'}")
    assert factflow("demo", "--execution", EXEC, env=env).returncode == 0
    return env


def test_serve_prints_the_port_it_bound_and_stops_on_sigterm(demo_env):
    with serving("--threads", "4", env=demo_env) as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        assert url == f"http://127.0.0.1:{port}" and port > 0
        assert curl(url + "/api/v1/health")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr.read() == b""


def test_curl_against_every_endpoint_of_the_spec(demo_env):
    with serving(env=demo_env) as (_, url):
        api = url + "/api/v1"
        code, body = curl(f"{api}/storage/objects?prefix=executions/{EXEC}/&include_metadata=false&limit=5")
        page = json.loads(body)
        assert code == 200 and len(page["objects"]) == 5 and page["next_cursor"]
        code, body = curl(f"{api}/storage/objects?prefix=executions/{EXEC}/&delimiter=/")
        assert json.loads(body)["common_prefixes"] == [f"executions/{EXEC}/markdown_processor/",
                                                       f"executions/{EXEC}/sitemap_scraper/"]
        code, body = curl(f"{api}/storage/objects/{SITEMAP}")
        assert code == 200 and json.loads(body)["urls"]
        assert curl(f"{api}/storage/objects/{PAGE}")[1][:2] == b"\x1f\x8b"  # gzip bytes, untouched
        code, head = curl("-I", f"{api}/storage/objects/{PAGE}")
        assert code == 200 and b'etag: "' in head.lower() and b"content-type: application/gzip" in head.lower()
        assert curl("-r", "0-1", f"{api}/storage/objects/{PAGE}") == (206, b"\x1f\x8b")
        code, body = curl(f"{api}/storage/objects/{PAGE}/metadata")
        assert code == 200 and json.loads(body)["adapter"] == "web_scraper"
        assert json.loads(curl(f"{api}/storage/objects/{PAGE}?view=metadata")[1])["key"] == PAGE
        code, body = curl("-X", "PUT", "--data-binary", "hello", "-H", "Content-Type: text/plain",
                          "-H", 'X-Factflow-Metadata: {"adapter": "curl"}', f"{api}/storage/objects/notes/a%20b.txt")
        assert code == 201 and json.loads(body)["adapter"] == "curl"
        assert curl(f"{api}/storage/objects/notes/a%20b.txt") == (200, b"hello")
        assert curl("-X", "DELETE", f"{api}/storage/objects/notes/a%20b.txt")[0] == 204
        code, body = curl(f"{api}/executions")
        assert code == 200 and json.loads(body)["executions"][0]["execution_id"] == EXEC
        assert json.loads(curl(f"{api}/executions/{EXEC}")[1])["status"] == "completed"
        code, body = curl("-X", "PUT", "-H", "Content-Type: application/json", "-d", '{"status": "running"}',
                          f"{api}/executions/other")
        assert code == 200 and json.loads(body)["status"] == "running"
        code, body = curl(f"{api}/openapi.json")
        assert code == 200 and "/api/v1/storage/objects/{key}" in json.loads(body)["paths"]
        code, body = curl(f"{api}/storage/objects/executions/{EXEC}/missing")
        assert code == 404 and set(json.loads(body)) == {"detail", "error_code", "timestamp"}


def test_a_token_opens_other_addresses_and_is_required(demo_env):
    env = {**demo_env, "FACTFLOW_API_TOKEN": "t0ken"}
    with serving("--host", "0.0.0.0", env=env) as (_, url):
        port = url.rsplit(":", 1)[1]
        assert url == f"http://0.0.0.0:{port}"
        local = f"http://127.0.0.1:{port}"
        assert curl(f"{local}/api/v1/storage/objects")[0] == 401
        assert curl("-H", "Authorization: Bearer t0ken", f"{local}/api/v1/storage/objects")[0] == 200
        assert curl(f"{local}/api/v1/health")[0] == 200
        api_env = clean_env(FACTFLOW_API_URL=local, FACTFLOW_API_TOKEN="t0ken")
        listed = factflow("storage", "list", "--execution", EXEC, env=api_env)
        assert listed.returncode == 0 and listed.stdout == factflow("storage", "list", "--execution", EXEC,
                                                                    env=demo_env).stdout
        denied = factflow("storage", "list", env={**api_env, "FACTFLOW_API_TOKEN": "wrong"})
        assert denied.returncode == 1 and denied.stderr.decode().strip() == (
            "Error: invalid bearer token; FACTFLOW_API_TOKEN (or api_token in the config file) is not the "
            "server's token")


def test_help_does_not_import_the_server():
    code = ("import sys; from click.testing import CliRunner; from factflow_storage.cli.main import cli; "
            "r = CliRunner().invoke(cli, ['serve', '--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('bottle', 'waitress', 'minio') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
