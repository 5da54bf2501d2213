"""The pipeline's API as a new author meets it: the README's examples run verbatim on
every provider kind, ``open_storage`` finds storage as the CLI does, and a type checker
outside the package sees its types."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from factflow_storage import ConfigError, NotFound, open_storage

REPO = Path(__file__).resolve().parent.parent
SECTION = "Writing from a pipeline"


def readme_examples() -> list[str]:
    """The Python literal blocks of the README's section, dedented, in order."""
    lines = (REPO / "README.rst").read_text().splitlines()
    start = lines.index(SECTION)
    end = next(i for i in range(start + 2, len(lines)) if lines[i] and set(lines[i]) == {"-"}) - 1
    blocks, current, inside = [], [], False
    for line in lines[start + 2:end]:
        if inside and (not line or line.startswith(" ")):
            current.append(line)
            continue
        if inside:
            blocks.append(textwrap.dedent("\n".join(current)).strip() + "\n")
            current, inside = [], False
        if line.endswith("::"):
            inside = True
    if inside:
        blocks.append(textwrap.dedent("\n".join(current)).strip() + "\n")
    return [block for block in blocks if "open_storage" in block]


def python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**env, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def factflow(env: dict[str, str], cwd: Path, *args: str) -> bytes:
    done = subprocess.run([sys.executable, "-m", "factflow_storage", *args], env={**env, "PYTHONPATH": str(REPO)},
                          cwd=cwd, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def pipeline_on(target):
    """A ``PipelineStorage`` on the fixture's storage (S3 options given, not from the environment)."""
    from factflow_storage.pipeline import PipelineStorage

    return PipelineStorage(target.open())


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    env.update(extra)
    return env


SUMMARY_KEY = "executions/exec-42/scraper/summarise/page-1.json"
PAGE_KEY = "executions/exec-42/scraper/fetch/page-1.html"


def check_first_example(stdout: str) -> None:
    checksum = "sha256:" + hashlib.sha256(b'{"words": 1}').hexdigest()
    assert stdout.splitlines() == [
        f"{checksum[:15]} b'{{\"words\": 1}}'",
        f"['{PAGE_KEY}']",
        f"['{PAGE_KEY}', '{SUMMARY_KEY}']",
        "completed",
        "not found: no object 'executions/exec-42/scraper/fetch/missing'",
    ]


def test_the_readme_has_both_examples():
    blocks = readme_examples()
    assert len(blocks) == 2
    assert "asyncio.to_thread" in blocks[1]


def test_readme_examples_run_verbatim(storage, tmp_path):
    first, second = readme_examples()
    env = storage.cli_env()
    done = python(first, env, tmp_path)
    assert done.returncode == 0, done.stderr
    check_first_example(done.stdout)
    # What the pipeline wrote is what the CLI, opened from the same settings, shows.
    blob = orjson.loads(factflow(env, tmp_path, "storage", "metadata", PAGE_KEY, "--output", "json"))
    assert blob["config_hash"] == "sha256:9f2c"
    assert blob["adapter"] == "http" and blob["status_code"] == 200
    assert blob["route_id"] == "scraper" and blob["stage"] == "fetch"
    assert factflow(env, tmp_path, "storage", "get", PAGE_KEY) == b"<h1>Hello</h1>"
    record = orjson.loads(factflow(env, tmp_path, "execution", "show", "exec-42", "--output", "json"))
    assert record["status"] == "completed" and record["object_count"] == 2

    done = python(second, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "4\n"
    listed = factflow(env, tmp_path, "storage", "list", "--execution", "exec-43", "--output", "json")
    assert len(listed.splitlines()) == 4


def test_default_storage_is_relative_to_the_working_directory_and_api_url_is_not_used(tmp_path):
    first = readme_examples()[0]
    # Nothing listens on port 9: a library that went through the API would fail.
    env = clean_env(HOME=str(tmp_path), FACTFLOW_API_URL="http://127.0.0.1:9")
    done = python(first, env, tmp_path)
    assert done.returncode == 0, done.stderr
    check_first_example(done.stdout)
    assert (tmp_path / "output" / "storage" / PAGE_KEY).read_bytes() == b"<h1>Hello</h1>"
    direct = clean_env(HOME=str(tmp_path))
    assert factflow(direct, tmp_path, "storage", "get", PAGE_KEY) == b"<h1>Hello</h1>"


def test_settings_come_from_argument_environment_config_file_default(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("FACTFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "factflow.toml").write_text('storage_uri = "file://./from-toml"\n')

    def root_of(*args, **kwargs) -> str:
        with open_storage(*args, **kwargs) as storage:
            storage.write("k", b"x")
            return storage.uri

    assert root_of() == "file://./from-toml"
    assert (tmp_path / "from-toml" / "k").read_bytes() == b"x"
    monkeypatch.setenv("FACTFLOW_STORAGE_URI", f"file://{tmp_path}/from-env")
    assert root_of() == f"file://{tmp_path}/from-env"
    assert root_of(f"file://{tmp_path}/from-arg") == f"file://{tmp_path}/from-arg"
    other = tmp_path / "other.toml"
    other.write_text('storage_uri = "file://./from-other"\n[minio]\nendpoint = "x"\n')
    monkeypatch.delenv("FACTFLOW_STORAGE_URI")
    assert root_of(config=other) == "file://./from-other"
    with pytest.raises(ConfigError, match="does not exist"):
        open_storage(config=tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="unknown storage URI"):
        open_storage("ftp://nowhere")


def test_writes_metadata_streams_and_errors(storage, tmp_path):
    import io

    from factflow_storage import Conflict, InvalidKey, TooLarge

    with pipeline_on(storage) as handle:
        key = handle.key("e1", "r", "s", "m/1.bin")
        stored = handle.write(key, io.BytesIO(b"a" * 70_000), lineage="row-7",
                              metadata={"lineage": "overridden", "extra": [1, 2]})
        assert stored["lineage"] == "row-7" and stored["extra"] == [1, 2]
        assert stored["content_length"] == 70_000 and stored["msg_id"] == "m/1.bin"
        assert handle.metadata(key) == stored
        with handle.open(key, start=69_998) as stream:
            assert stream.read() == b"aa" and stream.metadata["checksum"] == stored["checksum"]
        assert handle.exists(key) and not handle.exists(key + "x")
        with pytest.raises(InvalidKey):
            handle.write("a//b", b"")
        with pytest.raises(TooLarge):
            handle.write("big", b"", metadata={"x": "y" * 70_000})
        assert not handle.exists("big")
        with pytest.raises(NotFound):
            handle.metadata("nothing")
        with pytest.raises(NotFound):
            handle.execution("never-started")
        if storage.kind == "file":
            with pytest.raises(Conflict):
                handle.write(key + "/child", b"")
        assert handle.delete(key) and not handle.delete(key)


def test_running_finishes_failed_when_the_block_raises(storage):
    with pipeline_on(storage) as handle:
        with pytest.raises(RuntimeError), handle.running("e-fail"):
            handle.write("executions/e-fail/r/s/m", b"1")
            raise RuntimeError("stage broke")
        record = handle.execution("e-fail")
        assert record["status"] == "failed" and record["object_count"] == 1


def test_import_is_cheap_and_opening_file_storage_loads_no_server_or_s3_client(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import factflow_storage
        before = sorted(m for m in sys.modules if m.startswith("factflow_storage."))
        storage = factflow_storage.open_storage("file://{tmp_path}/s")
        storage.write("k", b"x")
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("minio", "bottle", "waitress", "click"))
        print(before, heavy)
    """)
    done = python(code, clean_env(HOME=str(tmp_path)), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[] []\n"


MYPY_PROBE = '''\
from factflow_storage import NotFound, PipelineStorage, open_storage

storage: PipelineStorage = open_storage()
reveal_type(storage.write("k", b"x", lineage=["p"], config_hash="h"))
reveal_type(storage.read("k"))
reveal_type([info.size for info in storage.list("")])
storage.finish_execution("e", "done")
count: int = storage.metadata("k")
try:
    pass
except NotFound as err:
    reveal_type(err)
'''


def test_mypy_sees_the_types_from_outside_the_package(tmp_path):
    probe = tmp_path / "pipeline_probe.py"
    probe.write_text(MYPY_PROBE)
    env = clean_env(PYTHONPATH=str(REPO), MYPYPATH="")
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), "--no-color-output",
                           "--hide-error-context", probe.name], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    lines = [line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith(probe.name)]
    assert 'note: Revealed type is "dict[str, Any]"' in lines, done.stdout
    assert 'note: Revealed type is "bytes"' in lines, done.stdout
    assert 'note: Revealed type is "list[int]"' in lines, done.stdout
    assert 'note: Revealed type is "factflow_storage.errors.NotFound"' in lines, done.stdout
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 2, done.stdout
    assert "finish_execution" in errors[0] and "Literal['done']" in errors[0]
    assert "variable has type \"int\"" in errors[1]
    assert "import-untyped" not in done.stdout and "py.typed" not in done.stdout


def test_batch_writes_are_visible_at_once_and_an_error_still_leaves_them(storage):
    with pipeline_on(storage) as handle:
        with pytest.raises(KeyError), handle.batch() as batch:
            first = batch.write("executions/b/r/s/1", b"one", lineage=["executions/b/r/s/0"], config_hash="h")
            assert handle.read("executions/b/r/s/1") == b"one"
            assert handle.metadata("executions/b/r/s/1") == first and first["lineage"] == ["executions/b/r/s/0"]
            batch.write("executions/b/r/t/2", b"two")
            raise KeyError("stage broke")
        assert [info.key for info in handle.list("executions/b/")] == ["executions/b/r/s/1", "executions/b/r/t/2"]


BATCH_PROBE = """
import sys
from factflow_storage import open_storage

with open_storage(sys.argv[1]) as storage:
    if sys.argv[2] == "batch":
        with storage.batch() as batch:
            for n in range(10):
                batch.write(f"executions/e/r/{'st'[n % 2]}/m{n}", b"x", lineage=[f"executions/e/r/s/m{n - 1}"])
    else:
        for n in range(10):
            storage.write(f"executions/e/r/{'st'[n % 2]}/m{n}", b"x", lineage=[f"executions/e/r/s/m{n - 1}"])
    sys.stdout.write("written\\n")
    sys.stdout.flush()
"""


@pytest.mark.parametrize("mode, fsyncs", [("plain", 34), ("batch", 26)])
def test_a_batch_fsyncs_each_directory_once_before_its_block_ends(tmp_path, mode, fsyncs):
    # Bytes and sidecar of each of the ten writes, then one fsync per directory (two) in a
    # batch, instead of one per write; all of them before the code after the block runs.
    # Both modes also make four for the execution graph: its two stage pairs (s -> s,
    # s -> t), each a record and its directory, written once before the first object.
    trace = tmp_path / "trace"
    done = subprocess.run(["strace", "-f", "-qq", "-e", "trace=fsync,write", "-o", str(trace), sys.executable, "-c",
                           BATCH_PROBE, f"file://{tmp_path}/s", mode], env=clean_env(PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "written\n"
    calls = [line for line in trace.read_text().splitlines() if " fsync(" in line or " write(1," in line]
    assert ' write(1, "written' in calls[-1], calls[-3:]
    assert sum(" fsync(" in line for line in calls) == fsyncs
