"""``storage list --output json`` of a filesystem store is written by its own walker
(``providers/fs_json_rows.py``): its bytes are those of the service's rows, rendered as
every other listing is, on a tree made to tell them apart."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from factflow_storage.errors import InvalidKey
from factflow_storage.providers.filesystem import FilesystemProvider
from factflow_storage.providers.fs_json_rows import ndjson_rows
from factflow_storage.registry import parse_storage_uri
from factflow_storage.service import StorageService

NAMES = ["plain.json", "with space", 'quote"d', "back\\slash", "tab\tname", "new\nline", "ctrl\x01\x1f",
         "del\x7f", "ünïcödé.md", "日本語", "emoji-😀", "a-b", "a0", ".hidden", "zero", "</script>", "sl/ash"]
# Around a millisecond's and a second's edge, where float rounding to the microsecond
# carries into the next one; before 1971 and after 2200, which format_time takes whole.
EDGES_NS = [1_700_000_000_000_000_000, 1_700_000_000_999_999_999, 1_700_000_000_999_999_500,
            1_700_000_000_999_999_499, 1_700_000_000_000_999_500, 1_700_000_000_123_499_999,
            1_700_000_000_000_000_001, 0, 86_400_123_456_789, 31_535_999_999_999_999, 31_536_000_000_000_000,
            7_258_118_399_999_999_999, 7_258_118_400_000_000_000, 10_000_000_000_987_654_321,
            -1_500_000_000]


def _write(path: Path, size: int, mtime_ns: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "root"
    rng = random.Random(7)
    stamps = iter(EDGES_NS * 50)
    for directory in ("", "a/", "a/b/", "executions/e1/r/s/", "_factflow/inner/", "x/_factflow/", "a.c/"):
        for name in NAMES:
            if "/" in name:
                continue
            _write(root / f"{directory}{name}", rng.choice((0, 1, 17, 4096)), next(stamps))
            (root / f"{directory}{name}.meta.json").write_bytes(b"{}")  # sidecars are not objects
    for number in range(400):  # random times, many sharing a second
        _write(root / f"executions/e2/r/s/msg-{number:04d}", number,
               1_600_000_000_000_000_000 + rng.randrange(0, 5 * 10**9))
    os.symlink(root / "a/plain.json", root / "a/link-to-file")
    os.symlink(root / "a/b", root / "a/link-to-dir")
    os.symlink("/dev/zero", root / "a/zero-link")
    os.mkfifo(root / "a/fifo")
    with open(os.path.join(os.fsencode(root / "a"), b"undecodable-\xff"), "wb") as handle:
        handle.write(b"not a key")
    return root


def _general(root: Path, prefix: str, limit: int | None = None) -> bytes:
    """What the service's rows render as (``render.emit_ndjson``)."""
    service = StorageService(FilesystemProvider(parse_storage_uri(f"file://{root}")))
    option = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
    return b"".join(orjson.dumps(row, option=option) for row in service.list_rows(prefix, limit=limit))


@pytest.mark.parametrize("prefix", ["", "a/", "a", "a/b/", "a/b/ta", "executions/", "x/", "_factflow/",
                                    "no/such/", "a/plain.json/", "a/link-to-dir/", "a/fifo/", "a//"])
def test_rows_are_the_services_bytes(tree, prefix):
    provider = FilesystemProvider(parse_storage_uri(f"file://{tree}"))
    try:
        general = _general(tree, prefix)
    except InvalidKey as err:
        with pytest.raises(InvalidKey) as refused:
            b"".join(ndjson_rows(provider, prefix))
        assert str(refused.value) == str(err)
        return
    fast = b"".join(ndjson_rows(provider, prefix))
    assert fast == general
    if prefix == "":
        keys = [orjson.loads(line)["key"] for line in fast.splitlines()]
        assert len(keys) > 400 and keys == sorted(keys)
        assert {"a/del\x7f", "a/new\nline", 'a/quote"d', "x/_factflow/zero"} <= set(keys)
        assert not any("link" in key or "fifo" in key or key.endswith(".meta.json") or key.startswith("_factflow/")
                       or "undecodable" in key for key in keys)
    for limit in (1, 3, 1023, 1024, 1025):
        assert b"".join(ndjson_rows(provider, prefix, limit)) == _general(tree, prefix, limit)


def test_the_cli_writes_them(tree):
    def listing(*args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
        return subprocess.run([sys.executable, "-m", "factflow_storage", "--storage", f"file://{tree}", "storage",
                               "list", "--output", "json", *args], capture_output=True, env=env, timeout=60)

    whole = listing()
    assert (whole.returncode, whole.stderr) == (0, b"")
    assert whole.stdout == _general(tree, "")
    assert listing("--prefix", "a/", "--limit", "5").stdout == _general(tree, "a/", 5)
    assert listing("--execution", "e2").stdout == _general(tree, "executions/e2/")
    # A filter takes the service's path: the same rows either way.
    assert listing("--start-after", "").stdout == whole.stdout
    bad = listing("--prefix", "a//")
    assert bad.returncode == 1 and bad.stderr.decode().startswith("Error: invalid prefix 'a//'")
    missing = subprocess.run([sys.executable, "-m", "factflow_storage", "--storage", f"file://{tree}/none",
                              "storage", "list", "-o", "json"], capture_output=True, timeout=60)
    assert missing.returncode == 1 and b"does not exist" in missing.stderr and missing.stdout == b""
