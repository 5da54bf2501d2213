"""Listings reach stdout in batches, not one write per row (which dominates a large
listing when stdout is unbuffered or a pipe), with exactly the rows and order as before;
followed streams still flush each line."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

ROWS = 600


@pytest.fixture
def listed(file_storage):
    provider = file_storage.open()
    for number in range(ROWS):
        provider.write(f"exec-1/route/stage/m-{number:04d}.json", b"{}")
    provider.close()
    return file_storage


def _writes_to_stdout(target, log, *args: str) -> tuple[bytes, int]:
    env = {**target.cli_env(), "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(["strace", "-f", "-qq", "-e", "trace=write,writev", "-e", "signal=none", "-o", str(log),
                          sys.executable, "-m", "factflow_storage", *args],
                         capture_output=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    calls = [line for line in log.read_text().splitlines() if "write(1," in line or "writev(1," in line]
    return run.stdout, len(calls)


@pytest.mark.parametrize("output", ["json", "table"])
def test_a_listing_is_written_in_batches(listed, tmp_path, output):
    stdout, writes = _writes_to_stdout(listed, tmp_path / "strace.log", "storage", "list", "--prefix", "exec-1/",
                                       "--output", output)
    lines = stdout.splitlines()
    assert len(lines) == ROWS
    if output == "json":
        assert [orjson.loads(line)["key"] for line in lines] == [f"exec-1/route/stage/m-{n:04d}.json"
                                                               for n in range(ROWS)]
    assert writes <= ROWS // 100


def test_an_empty_listing_writes_nothing(listed, tmp_path):
    stdout, _ = _writes_to_stdout(listed, tmp_path / "strace.log", "storage", "list", "--prefix", "nothing/",
                                  "--output", "json")
    assert stdout == b""


def test_followed_lines_are_still_flushed_one_by_one(capfdbinary):
    from factflow_storage.cli import render

    seen = []

    def rows():
        for number in range(3):
            yield {"n": number}
            seen.append(capfdbinary.readouterr().out)

    render.emit_ndjson(rows(), flush_each=True)
    assert seen == [b'{"n":0}\n', b'{"n":1}\n', b'{"n":2}\n']
