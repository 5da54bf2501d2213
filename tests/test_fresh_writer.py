"""A writer in a fresh interpreter, through the public API only (``open_storage()`` and
``factflow storage put``), leaves what watchers and deletions rely on: the lineage index
entry of a cross-execution parent, and on S3 the write journal's marker. Nothing the
writer never asked for is loaded to do it: the watch layer stays out of the process.
"""

from __future__ import annotations

import subprocess
import sys

from factflow_storage.lineage_index import REFS
from factflow_storage.providers.s3_journal import journal_prefix
from factflow_storage.registry import create_storage_provider

PARENT_EXEC = "exec-parent"
CHILD_EXEC = "exec-child"
PARENT = f"executions/{PARENT_EXEC}/route-a/stage-1/m1.json"

_PIPELINE = """
import sys
import factflow_storage
with factflow_storage.open_storage() as storage:
    storage.write(sys.argv[1], b'{"n": 1}', lineage=[sys.argv[2]])
print(",".join(sorted(sys.modules)))
"""

# ``python -m factflow_storage storage put`` with the modules it loaded printed at exit.
_CLI = """
import atexit, runpy, sys
atexit.register(lambda: print(",".join(sorted(sys.modules)), file=sys.stderr))
sys.argv = ["factflow", *sys.argv[1:]]
runpy.run_module("factflow_storage", run_name="__main__")
"""


def _journal_expected(storage, request) -> bool:
    # MinIO pushes its changes (the listen API), so the journal is left out there.
    return storage.kind == "s3" and request.getfixturevalue("s3_server").kind != "minio"


def _check_stored(storage, request, child: str) -> None:
    provider = storage.open()
    try:
        assert provider.read(child) == b'{"n": 1}'
        refs = list(provider.list_records(f"{REFS}{PARENT_EXEC}/{CHILD_EXEC}/"))
        assert len(refs) == 1, refs
        markers = list(provider.list_records(journal_prefix(CHILD_EXEC)))
        if _journal_expected(storage, request):
            assert [name.endswith(child.removeprefix(f"executions/{CHILD_EXEC}/")) for name in markers] == [True]
        else:
            assert markers == []
    finally:
        provider.close()


def _loaded(listing: str) -> list[str]:
    return sorted(m for m in listing.strip().splitlines()[-1].split(",") if m.startswith("factflow_storage.watch"))


def test_open_storage_in_a_fresh_interpreter_indexes_and_journals(storage, request, tmp_path):
    child = f"executions/{CHILD_EXEC}/route-a/stage-2/m1.json"
    done = subprocess.run([sys.executable, "-c", _PIPELINE, child, PARENT], env=storage.cli_env(),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _loaded(done.stdout) == []
    _check_stored(storage, request, child)


def test_cli_put_in_a_fresh_interpreter_indexes_and_journals(storage, request, tmp_path):
    child = f"executions/{CHILD_EXEC}/route-a/stage-2/m2.json"
    source = tmp_path / "m2.json"
    source.write_bytes(b'{"n": 1}')
    done = subprocess.run([sys.executable, "-c", _CLI, "storage", "put", child, "--file", str(source),
                           "--metadata", f'{{"lineage": ["{PARENT}"]}}'],
                          env=storage.cli_env(), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _loaded(done.stderr) == []
    _check_stored(storage, request, child)


def test_a_copy_destination_keeps_no_journal(storage):
    provider = create_storage_provider(storage.uri, storage.options, hooks=False)
    try:
        provider.write(f"executions/{CHILD_EXEC}/route-a/stage-1/m1.json", b"x")
        assert list(provider.list_records(journal_prefix(CHILD_EXEC))) == []
    finally:
        provider.close()
