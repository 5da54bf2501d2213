"""Every command prints the same bytes, and fails with the same line and exit code, in
direct mode and over HTTP (``--api`` / ``FACTFLOW_API_URL``), on every storage kind.

The server runs in this process, so the clock both modes stamp records with is frozen
once, and a write repeated in the other mode must print exactly what the first printed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cli_support import EXEC, HTML, MARKDOWN, SITEMAP, both_modes

WRITES = [
    ["demo", "--execution", "ex9"],
    ["--output", "json", "demo", "--execution", "ex9"],
    ["execution", "start", "ex2"],
    ["execution", "start", "ex2", "--output", "json"],
    ["execution", "finish", "ex2", "--status", "failed", "--force"],
    ["execution", "finish", EXEC, "--force", "--output", "json"],
    ["storage", "delete", "never/existed", "--output", "json"],
]


@pytest.mark.parametrize("args", WRITES, ids=" ".join)
def test_writes_print_the_same(demo, args):
    assert demo.both(args)[0] == 0


def test_deletes_print_the_same(demo):
    # A delete done twice reports the second as missing, so each mode deletes its own key.
    assert demo.run(demo.direct_env, ["storage", "delete", MARKDOWN]) == (0, f"deleted {MARKDOWN}\n".encode(), b"")
    assert demo.run(demo.api_env, ["storage", "delete", SITEMAP]) == (0, f"deleted {SITEMAP}\n".encode(), b"")
    assert demo.both(["storage", "delete", MARKDOWN]) == (0, b"", f"no object {MARKDOWN}: nothing deleted\n".encode())


@pytest.mark.parametrize("args, stdin", [
    (["storage", "put", "up/ü file.txt", "--metadata", '{"adapter": "cli", "n": [1, 2], "note": "ä"}',
      "--content-type", "text/plain"], b"hello\n"),
    (["storage", "put", "up/data.json", "--output", "json"], b'{"a": 1}'),
    (["-o", "json", "storage", "put", "up/empty"], b""),
    (["storage", "put", "up/binary.bin"], bytes(range(256)) * 4096),
], ids=["text", "json", "empty", "binary"])
def test_put_prints_the_same_and_stores_the_same(modes, args, stdin):
    code, _, err = modes.both(args, stdin)
    assert code == 0, err
    key = next(arg for arg in args if arg.startswith("up/"))
    assert modes.both(["storage", "get", key])[1] == stdin


def test_put_from_a_file(modes, tmp_path):
    source = tmp_path / "payload.bin"
    source.write_bytes(b"\x00\x01 payload" * 1000)
    assert modes.both(["storage", "put", "files/payload.bin", "--file", str(source)])[0] == 0
    assert modes.both(["storage", "get", "files/payload.bin"])[1] == source.read_bytes()


READS = [
    ["storage", "browse"],
    ["storage", "browse", "executions/"],
    ["storage", "browse", f"executions/{EXEC}/"],
    ["storage", "browse", f"executions/{EXEC}/sitemap_scraper/web_scraper/", "--output", "json"],
    ["storage", "browse", "executions/e"],
    ["storage", "list", "--execution", EXEC],
    ["storage", "list", "--execution", EXEC, "--limit", "3"],
    ["storage", "list", "--execution", EXEC, "--route", "markdown_processor", "--stage", "chunker"],
    ["storage", "list", "--execution", EXEC, "--stage", "web_scraper"],
    ["storage", "list", "--prefix", f"executions/{EXEC}/sitemap_scraper/", "--output", "json"],
    ["storage", "list", "--execution", EXEC, "--metadata", "--output", "json"],
    ["-o", "json", "storage", "list"],
    ["storage", "get", SITEMAP],
    ["storage", "get", HTML],
    ["storage", "get", SITEMAP, "--output", "json"],
    ["storage", "get", HTML, "--output", "json"],
    ["-o", "json", "storage", "get", MARKDOWN],
    ["storage", "metadata", HTML],
    ["storage", "metadata", SITEMAP, "--output", "json"],
    ["execution", "show", EXEC],
    ["execution", "show", EXEC, "-o", "json"],
    ["execution", "list"],
    ["execution", "list", "--output", "json"],
]


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_reads_print_the_same(demo, args):
    code, out, err = demo.both(args)
    assert code == 0 and out and err == b"", err


FAILURES = [
    ["storage", "get", "executions/ex1/missing"],
    ["storage", "get", "a/../b"],
    ["storage", "get", "_factflow/executions/ex1.json"],
    ["storage", "metadata", "executions/ex1/missing", "--output", "json"],
    ["storage", "metadata", "a//b"],
    ["storage", "browse", "../x"],
    ["storage", "list", "--prefix", "a\\b"],
    ["storage", "list", "--execution", "a/b"],
    ["storage", "list", "--execution", EXEC, "--route", "x/y"],
    ["storage", "delete", "x.meta.json"],
    ["storage", "put", "_factflow/x"],
    ["storage", "put", "ok/key", "--metadata", "[1]"],
    ["execution", "show", "nope"],
    ["execution", "show", "a/b"],
    ["execution", "start", ".."],
    ["execution", "finish", "ex1", "--status", "bogus"],
]


@pytest.mark.parametrize("args", FAILURES, ids=" ".join)
def test_failures_print_the_same_line(demo, args):
    code, out, err = demo.both(args, b"bytes")
    assert code in (1, 2) and out == b""
    assert len(err.decode().strip().splitlines()) >= 1


def test_conflict_on_the_filesystem_fails_the_same(file_storage, tmp_path, monkeypatch):
    # Only a filesystem refuses an object beside a prefix; S3 holds both.
    with both_modes(file_storage, tmp_path, monkeypatch) as modes:
        assert modes.both(["storage", "put", "a/b"], b"object")[0] == 0
        code, out, err = modes.both(["storage", "put", "a/b/beside"], b"x")
        assert code == 1 and b"cannot write" in err and len(err.splitlines()) == 1


def test_listings_longer_than_a_page(modes):
    with modes.storage.open() as provider:
        for n in range(1010):
            provider.write(f"many/k{n:05d}", b"x", None)
    listed = modes.both(["storage", "list", "--prefix", "many/"])[1]
    assert len(listed.splitlines()) == 1010
    assert len(modes.both(["storage", "list", "--prefix", "many/", "--limit", "1005"])[1].splitlines()) == 1005
    assert len(modes.both(["storage", "browse", "many/"])[1].splitlines()) == 1010


def test_api_flag_equals_the_environment_variable(demo):
    args = ["storage", "list", "--execution", EXEC, "--output", "json"]
    assert demo.api_flag(args) == demo.run(demo.api_env, args) == demo.run(demo.direct_env, args)


def test_a_server_that_is_gone_is_one_line_and_exit_1(modes):
    env = {**modes.api_env, "FACTFLOW_API_URL": "http://127.0.0.1:9"}
    code, out, err = modes.run(env, ["storage", "browse"])
    assert (code, out) == (1, b"")
    assert err.decode().startswith("Error: cannot reach the factflow API at http://127.0.0.1:9")
    assert len(err.decode().strip().splitlines()) == 1


def test_the_installed_command_over_http(demo):
    """The real entry point in a subprocess: binary bytes and NDJSON, both modes alike."""
    def factflow(env: dict, *args: str) -> subprocess.CompletedProcess:
        full = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
        full.update({k: v for k, v in env.items() if v is not None})
        return subprocess.run([sys.executable, "-m", "factflow_storage", *args], env=full,
                              capture_output=True, timeout=60)

    for args in (["storage", "get", HTML], ["storage", "list", "--execution", EXEC, "-o", "json"]):
        direct, remote = factflow(demo.direct_env, *args), factflow(demo.api_env, *args)
        assert (remote.returncode, remote.stdout, remote.stderr) == (0, direct.stdout, b"")
        assert direct.stdout
