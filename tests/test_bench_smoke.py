"""``bench/all.py`` runs and prints its table: the cheap rows only, at ``--quick`` sizes.

The figures themselves are not asserted (timing is the benchmarks' business, not the
tests'); that every requested row is measured, on both sides, and reported is."""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHEAP = ("fs-list", "fs-get-pipe", "fs-get-file", "serve-p99")


def bench_all(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "bench" / "all.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_quick_run_prints_the_table_with_the_rows_asked_for():
    done = bench_all("--quick", "--only", ",".join(CHEAP))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d") in lines[0]
    header = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert header == ["id", "work", "reference", "factflow", "reference", "ratio", "target", "met"]
    body = [line for line in lines[4:] if line.startswith("| ")]
    cells = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]] for line in body]
    assert [row[0] for row in cells] == list(CHEAP)
    for row in cells:
        assert len(row) == 8, row
        assert re.fullmatch(r"\d+ ms|\d+\.\d\d s", row[3]), row
        assert row[7] in ("yes", "**no**"), row
    by_id = {row[0]: row for row in cells}
    for timed_against_a_tool in ("fs-list", "fs-get-pipe", "fs-get-file"):
        row = by_id[timed_against_a_tool]
        assert re.fullmatch(r"\d+ ms|\d+\.\d\d s", row[4]), row
        assert re.fullmatch(r"\d+\.\d\dx", row[5]), row
    assert by_id["serve-p99"][4:6] == ["—", "—"]
    assert by_id["serve-p99"][6] == "<= 250 ms"


def test_unknown_row_is_a_usage_error():
    done = bench_all("--only", "fs-list,no-such-row")
    assert done.returncode == 2
    assert "unknown row id(s): no-such-row" in done.stderr
    assert "Traceback" not in done.stderr


def test_write_rows_are_measured_on_both_sides():
    done = bench_all("--quick", "--only", "fs-write-small,fs-write-batch")
    assert done.returncode == 0, done.stderr
    body = [line for line in done.stdout.splitlines() if line.startswith("| fs-write")]
    assert [line.split("|")[1].strip() for line in body] == ["fs-write-small", "fs-write-batch"]
    for line in body:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert re.fullmatch(r"\d+ ms|\d+\.\d\d s", cells[3]) and re.fullmatch(r"\d+ ms|\d+\.\d\d s", cells[4])
        assert re.fullmatch(r"\d+\.\d\dx", cells[5]) and cells[6] == "<= 1.5x", cells
