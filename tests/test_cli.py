"""The ``factflow`` command through click's CliRunner: output shapes, exit codes, errors."""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import shlex
import subprocess
import sys
from pathlib import Path
from unittest.mock import ANY

import click
import orjson
import pytest
from click.testing import CliRunner

from factflow_storage.cli.main import cli
from factflow_storage.cli.options import Duration

REPO = Path(__file__).resolve().parent.parent
BINARY = bytes(range(256)) * 64 + b"\r\n\x00\xff"


class Factflow:
    """Runs ``factflow ARGS`` in-process against one storage, with a clean environment."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def __call__(self, *args: str, input: bytes | str | None = None, env: dict | None = None):
        return CliRunner().invoke(cli, list(args), input=input, env={**self.env, **(env or {})},
                                  catch_exceptions=False, prog_name="factflow")

    def ok(self, *args: str, **kwargs):
        result = self(*args, **kwargs)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        assert result.stderr == ""
        return result

    def json(self, *args: str, **kwargs):
        return orjson.loads(self.ok(*args, **kwargs).stdout_bytes)

    def ndjson(self, *args: str, **kwargs):
        return [orjson.loads(line) for line in self.ok(*args, **kwargs).stdout_bytes.splitlines()]

    def fails(self, *args: str, code: int = 1, says: str = "", **kwargs):
        result = self(*args, **kwargs)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert says in result.stderr
        if code == 1:
            assert result.stdout == ""
            assert len(result.stderr.splitlines()) == 1, result.stderr
            assert result.stderr.startswith("Error: ")
        return result


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No stray settings: no FACTFLOW_* variables, no ./factflow.toml, no user config."""
    for name in list(os.environ):
        if name.startswith("FACTFLOW_"):
            monkeypatch.delenv(name)
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "work")


@pytest.fixture
def ff(file_storage) -> Factflow:
    return Factflow({"FACTFLOW_STORAGE_URI": file_storage.uri})


@pytest.fixture
def any_ff(storage) -> Factflow:
    """The CLI against every provider kind."""
    return Factflow({**storage.env, "FACTFLOW_STORAGE_URI": storage.uri})


def lines(result) -> list[str]:
    return result.stdout.splitlines()


# -- the read/write slice, on every provider ---------------------------------------------


def test_put_browse_list_get_metadata_delete(any_ff, tmp_path):
    stored = any_ff.json("storage", "put", "executions/e1/r1/s1/m1.bin", "--output", "json", input=BINARY)
    assert stored["key"] == "executions/e1/r1/s1/m1.bin"
    assert stored["content_length"] == len(BINARY)
    assert stored["checksum"] == "sha256:" + hashlib.sha256(BINARY).hexdigest()
    source = tmp_path / "doc.json"
    source.write_bytes(b'{"answer": 42}')
    any_ff.ok("storage", "put", "executions/e1/r1/s2/m1.json", "--file", str(source),
              "--metadata", '{"lineage": ["executions/e1/r1/s1/m1.bin"]}')
    any_ff.ok("storage", "put", "executions/e1/r2/s1/m1.txt", "--file", "-", input="héllo\n")

    assert any_ff.ok("storage", "get", "executions/e1/r1/s1/m1.bin").stdout_bytes == BINARY
    assert any_ff.json("storage", "browse", "executions/e1/", "--output", "json") == {
        "prefix": "executions/e1/", "common_prefixes": ["executions/e1/r1/", "executions/e1/r2/"], "objects": []}
    rows = any_ff.ndjson("storage", "list", "--execution", "e1", "--output", "json")
    assert [row["key"] for row in rows] == ["executions/e1/r1/s1/m1.bin", "executions/e1/r1/s2/m1.json",
                                            "executions/e1/r2/s1/m1.txt"]
    blob = any_ff.json("storage", "metadata", "executions/e1/r1/s2/m1.json", "--output", "json")
    assert blob["lineage"] == ["executions/e1/r1/s1/m1.bin"]
    assert blob["content_type"] == "application/json"
    document = any_ff.json("storage", "get", "executions/e1/r1/s2/m1.json", "--output", "json")
    assert document["content"] == {"answer": 42}

    any_ff.ok("storage", "delete", "executions/e1/r1/s1/m1.bin")
    any_ff.fails("storage", "get", "executions/e1/r1/s1/m1.bin", says="executions/e1/r1/s1/m1.bin")
    missing = any_ff("storage", "delete", "executions/e1/r1/s1/m1.bin")  # exit 0 as on S3, but said
    assert (missing.exit_code, missing.stdout) == (0, "")
    assert missing.stderr == "no object executions/e1/r1/s1/m1.bin: nothing deleted\n"


# -- put ---------------------------------------------------------------------------------


def test_put_reports_what_it_stored(ff):
    result = ff.ok("storage", "put", "notes/a.txt", input=b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    assert lines(result) == [f"stored notes/a.txt (3 bytes, sha256:{digest})"]


def test_put_metadata_and_content_type(ff):
    ff.ok("storage", "put", "k.bin", "--metadata", '{"adapter": "x", "custom": {"n": 1}, "checksum": "forged"}',
          "--content-type", "application/x-custom", input=b"data")
    blob = ff.json("storage", "metadata", "k.bin", "-o", "json")
    assert blob["adapter"] == "x" and blob["custom"] == {"n": 1}
    assert blob["content_type"] == "application/x-custom"
    assert blob["checksum"] == "sha256:" + hashlib.sha256(b"data").hexdigest()


@pytest.mark.parametrize("metadata, says", [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"),
                                            ('"text"', "JSON object")])
def test_put_refuses_bad_metadata_and_stores_nothing(ff, metadata, says):
    ff.fails("storage", "put", "k", "--metadata", metadata, input=b"x", says=says)
    ff.fails("storage", "get", "k", says="storage root")  # not even the root was created


def test_put_from_a_missing_file(ff, tmp_path):
    ff.fails("storage", "put", "k", "--file", str(tmp_path / "absent.bin"), says="cannot read")


def test_put_an_empty_stdin(ff):
    ff.ok("storage", "put", "empty", input=b"")
    assert ff.ok("storage", "get", "empty").stdout_bytes == b""


def test_object_beside_a_prefix_is_a_one_line_error(ff):
    ff.ok("storage", "put", "a/b", input=b"first")
    ff.fails("storage", "put", "a/b/c", input=b"second", says="cannot write 'a/b/c'")
    assert ff.ok("storage", "get", "a/b").stdout_bytes == b"first"


# -- get ---------------------------------------------------------------------------------


def test_get_writes_raw_bytes(ff):
    ff.ok("storage", "put", "bin/blob", input=BINARY)
    assert ff.ok("storage", "get", "bin/blob").stdout_bytes == BINARY
    assert ff.ok("storage", "get", "bin/blob", "--output", "table").stdout_bytes == BINARY


@pytest.mark.parametrize("key, data, content_type, expected", [
    ("doc.json", b'{"a": [1, 2], "b": null}', None, {"content": {"a": [1, 2], "b": None}}),
    ("doc.bin", b'{"a": 1}', "application/ld+json", {"content": {"a": 1}}),
    ("bad.json", b"{not json", None, {"content": "{not json"}),
    ("page.md", "# Titre\n\nété\n".encode(), None, {"content": "# Titre\n\nété\n"}),
    ("blob.bin", b"\x00\xff\xfe", None, {"content": base64.b64encode(b"\x00\xff\xfe").decode(),
                                        "content_encoding": "base64"}),
])
def test_get_json_document(ff, key, data, content_type, expected):
    extra = ["--content-type", content_type] if content_type else []
    stored = ff.json("storage", "put", key, *extra, "-o", "json", input=data)
    for args in (("storage", "get", key, "--output", "json"), ("--output", "json", "storage", "get", key)):
        assert ff.json(*args) == {"key": key, "metadata": stored, **expected}


def test_get_of_missing_and_invalid_keys(ff):
    ff.ok("storage", "put", "something", input=b"x")  # a root exists: the object is what is missing
    ff.fails("storage", "get", "nothing/here", says="no object 'nothing/here'")
    ff.fails("storage", "get", "a//b", says="invalid key")
    ff.fails("storage", "get", "a//b", "-o", "json", says="invalid key")


# -- metadata ----------------------------------------------------------------------------


def test_metadata_table_shows_every_field(ff):
    stored = ff.json("storage", "put", "executions/e1/r/s/m.md", "--metadata", '{"lineage": ["x", "y"]}',
                     "-o", "json", input=b"# t")
    shown = lines(ff.ok("storage", "metadata", "executions/e1/r/s/m.md"))
    fields = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in shown}
    assert set(fields) == set(stored)
    assert fields["lineage"] == '["x","y"]'
    assert fields["content_type"] == "text/markdown"
    assert fields["route_id"] == "r"


# -- list --------------------------------------------------------------------------------


@pytest.fixture
def tree(ff):
    for key in ("executions/e1/r1/s1/m1.json", "executions/e1/r1/s1/m2.txt", "executions/e1/r1/s2/m1.json",
                "executions/e1/r2/s1/m1.json", "executions/e10/r1/s1/m1.json", "executions/e1-b/r/s/m",
                "other/x"):
        ff.ok("storage", "put", key, input=key.encode())
    return ff


def test_list_ndjson_rows(tree):
    rows = tree.ndjson("storage", "list", "--prefix", "executions/", "--output", "json")
    assert [row["key"] for row in rows] == [
        "executions/e1-b/r/s/m", "executions/e1/r1/s1/m1.json", "executions/e1/r1/s1/m2.txt",
        "executions/e1/r1/s2/m1.json", "executions/e1/r2/s1/m1.json", "executions/e10/r1/s1/m1.json"]
    for row in rows:
        assert set(row) == {"key", "size", "last_modified"}
        assert row["size"] == len(row["key"])
        assert row["last_modified"].endswith("Z")


def test_list_execution_route_stage_and_limit(tree):
    def keys(*args):
        return [row["key"] for row in tree.ndjson("storage", "list", *args, "-o", "json")]

    assert keys("--execution", "e1") == ["executions/e1/r1/s1/m1.json", "executions/e1/r1/s1/m2.txt",
                                         "executions/e1/r1/s2/m1.json", "executions/e1/r2/s1/m1.json"]
    assert keys("--execution", "e1", "--route", "r1", "--stage", "s1") == [
        "executions/e1/r1/s1/m1.json", "executions/e1/r1/s1/m2.txt"]
    assert keys("--execution", "e1", "--stage", "s1") == [
        "executions/e1/r1/s1/m1.json", "executions/e1/r1/s1/m2.txt", "executions/e1/r2/s1/m1.json"]
    assert keys("--execution", "e1", "--limit", "2") == ["executions/e1/r1/s1/m1.json", "executions/e1/r1/s1/m2.txt"]
    assert keys("--prefix", "executions/e1/r1/s1/m") == ["executions/e1/r1/s1/m1.json", "executions/e1/r1/s1/m2.txt"]
    tree.fails("storage", "list", "--execution", "nobody", says="no execution 'nobody'")
    assert keys("--prefix", "executions/nobody/") == []  # an empty prefix listing is no error
    assert len(keys()) == 7


def test_list_with_metadata(tree):
    rows = tree.ndjson("storage", "list", "--execution", "e10", "--metadata", "-o", "json")
    assert len(rows) == 1
    assert set(rows[0]) == {"key", "size", "last_modified", "metadata"}
    assert rows[0]["metadata"] == tree.json("storage", "metadata", rows[0]["key"], "-o", "json")


def test_list_table(tree):
    shown = lines(tree.ok("storage", "list", "--execution", "e1", "--limit", "2"))
    assert len(shown) == 2
    stamp, size, key = shown[0].split()
    assert (size, key) == ("27", "executions/e1/r1/s1/m1.json") and stamp.endswith("Z")


def test_list_global_output_json(tree):
    assert tree.ok("--output", "json", "storage", "list", "--execution", "e10").stdout_bytes.count(b"\n") == 1


@pytest.mark.parametrize("args, says", [
    (("--execution", "e1", "--prefix", "x/"), "not both"),
    (("--limit", "0"), "--limit"),
    (("--limit", "many"), "--limit"),
    (("--output", "yaml"), "--output"),
])
def test_list_usage_errors(tree, args, says):
    tree.fails("storage", "list", *args, code=2, says=says)


@pytest.mark.parametrize("args", [("--prefix", "../"), ("--prefix", "a//"), ("--execution", "a/b"),
                                  ("--execution", ".."), ("--prefix", "_factflow/")])
def test_list_invalid_prefixes(tree, args):
    tree.fails("storage", "list", *args, says="invalid")


# -- browse ------------------------------------------------------------------------------


def test_browse_json_shape(tree):
    assert tree.json("storage", "browse", "executions/e1/r1/s1/", "-o", "json") == {
        "prefix": "executions/e1/r1/s1/", "common_prefixes": [],
        "objects": [{"key": "executions/e1/r1/s1/m1.json", "size": 27, "last_modified": ANY},
                    {"key": "executions/e1/r1/s1/m2.txt", "size": 26, "last_modified": ANY}]}
    assert tree.json("storage", "browse", "-o", "json") == {
        "prefix": "", "common_prefixes": ["executions/", "other/"], "objects": []}
    assert tree.json("storage", "browse", "executions/e1", "-o", "json")["common_prefixes"] == [
        "executions/e1-b/", "executions/e1/", "executions/e10/"]
    assert tree.json("storage", "browse", "nothing/", "-o", "json") == {
        "prefix": "nothing/", "common_prefixes": [], "objects": []}


def test_browse_table(tree):
    tree.ok("storage", "put", "executions/e1/top.txt", input=b"12345")
    shown = lines(tree.ok("storage", "browse", "executions/e1/"))
    assert [line.split()[-2:] for line in shown] == [
        ["PRE", "executions/e1/r1/"], ["PRE", "executions/e1/r2/"], ["5", "executions/e1/top.txt"]]


def test_browse_invalid_prefix(tree):
    tree.fails("storage", "browse", "executions//", says="invalid prefix")


# -- delete ------------------------------------------------------------------------------


def test_delete_outputs(ff):
    ff.ok("storage", "put", "gone", input=b"x")
    assert lines(ff.ok("storage", "delete", "gone")) == ["deleted gone"]
    ff.ok("storage", "put", "gone", input=b"x")
    assert ff.json("storage", "delete", "gone", "-o", "json") == {"key": "gone", "deleted": True}
    ff.fails("storage", "delete", "_factflow/executions/x.json", says="reserved")


# -- executions --------------------------------------------------------------------------


def test_execution_lifecycle(ff):
    started = ff.json("execution", "start", "e1", "-o", "json")
    assert started["execution_id"] == "e1" and started["status"] == "running"
    ff.ok("storage", "put", "executions/e1/r/s/m", input=b"x")
    table = lines(ff.ok("execution", "finish", "e1", "--status", "failed"))
    assert "status        failed" in table
    assert "object_count  1" in table
    shown = ff.json("execution", "show", "e1", "-o", "json")
    assert shown["status"] == "failed" and shown["object_count"] == 1
    ff.ok("execution", "start", "e2")
    listed = ff.json("execution", "list", "-o", "json")
    assert [r["execution_id"] for r in listed["executions"]] == ["e2", "e1"]
    table = lines(ff.ok("execution", "list"))
    assert table[0].split() == ["EXECUTION_ID", "STATUS", "STARTED_AT", "FINISHED_AT", "OBJECT_COUNT"]
    assert table[1].split()[:2] == ["e2", "running"] and table[1].split()[-2:] == ["-", "-"]


def test_execution_errors(ff):
    ff.fails("execution", "show", "nobody", says="no execution 'nobody'")
    ff.fails("execution", "finish", "e1", "--status", "done", code=2, says="done")
    ff.fails("execution", "start", "a/b", says="invalid execution id")


def test_finish_defaults_to_completed(ff):
    ff.ok("execution", "start", "e1")
    assert ff.json("execution", "finish", "e1", "-o", "json")["status"] == "completed"


# -- demo --------------------------------------------------------------------------------


def test_demo_writes_an_execution_worth_exploring(ff):
    printed = lines(ff.ok("demo", "--execution", "demo-1"))
    assert printed[0].startswith("wrote 16 objects for execution demo-1 (status completed)")
    record = ff.json("execution", "show", "demo-1", "-o", "json")
    assert record["status"] == "completed" and record["object_count"] == 16
    rows = ff.ndjson("storage", "list", "--execution", "demo-1", "--metadata", "-o", "json")
    assert len(rows) == 16
    keys = {row["key"] for row in rows}
    assert {row["key"].split("/")[2] for row in rows} == {"sitemap_scraper", "markdown_processor"}
    for row in rows:
        assert set(row["metadata"].get("lineage", [])) <= keys
    assert sum(bool(row["metadata"].get("lineage")) for row in rows) == 15
    html = next(key for key in sorted(keys) if key.endswith(".html.gz"))
    assert gzip.decompress(ff.ok("storage", "get", html).stdout_bytes).startswith(b"<html>")
    try_next = [shlex.split(line.strip()) for line in printed if line.startswith("  factflow ")]
    assert try_next
    for command in try_next:
        if command[1:3] == ["storage", "download"]:
            continue  # needs its own module; tested there
        args = command[1:command.index(">")] if ">" in command else command[1:]
        ff.ok(*args)


def test_demo_json(ff):
    shown = ff.json("demo", "--execution", "demo-2", "-o", "json")
    assert shown["execution"]["status"] == "completed"
    assert len(shown["keys"]) == 16


# -- settings and config show ------------------------------------------------------------


def settings_of(factflow, *global_args, env=None):
    shown = factflow.json(*global_args, "config", "show", "-o", "json", env=env)
    return {row["name"]: (row["value"], row["source"]) for row in shown["settings"]}, shown["config_file"]


def test_config_show_sources(tmp_path):
    factflow = Factflow({})
    shown, config_file = settings_of(factflow)
    assert shown["storage_uri"] == (f"file://{os.getcwd()}/output/storage", "default")
    assert config_file is None

    Path("factflow.toml").write_text('storage_uri = "file:///from-file"\n[minio]\nregion = "r1"\n')
    shown, config_file = settings_of(factflow)
    assert shown["storage_uri"] == ("file:///from-file", "config factflow.toml")
    assert shown["minio_region"] == ("r1", "config factflow.toml")
    assert config_file == "factflow.toml"

    shown, _ = settings_of(factflow, env={"FACTFLOW_STORAGE_URI": "file:///from-env"})
    assert shown["storage_uri"] == ("file:///from-env", "env FACTFLOW_STORAGE_URI")

    shown, _ = settings_of(factflow, "--storage", "file:///from-flag", env={"FACTFLOW_STORAGE_URI": "file:///x"})
    assert shown["storage_uri"] == ("file:///from-flag", "command line")

    named = tmp_path / "named.toml"
    named.write_text('api_url = "http://127.0.0.1:9"\n')
    shown, config_file = settings_of(factflow, "--config", str(named))
    assert shown["api_url"] == ("http://127.0.0.1:9", f"config {named}")
    assert shown["minio_region"] == (None, "default")  # ./factflow.toml not read
    assert shown["storage_uri"][0] is None and "unreachable" in shown["storage_uri"][1]  # the server's, if up
    assert config_file == str(named)


def test_config_show_masks_secrets():
    factflow = Factflow({"FACTFLOW_API_TOKEN": "tok-hush-1", "FACTFLOW_MINIO_SECRET_KEY": "key-hush-2",
                         "FACTFLOW_MINIO_ACCESS_KEY": "access-visible"})
    for args in (("config", "show"), ("config", "show", "-o", "json")):
        out = factflow.ok(*args).stdout
        assert "hush" not in out
        assert "access-visible" in out
    table = {line.split()[0]: line.split()[1:] for line in lines(factflow.ok("config", "show"))}
    assert table["api_token"] == ["****", "env", "FACTFLOW_API_TOKEN"]
    assert table["storage_uri"] == [f"file://{os.getcwd()}/output/storage", "default"]


def test_storage_follows_the_settings_chain(tmp_path):
    Path("factflow.toml").write_text(f'storage_uri = "file://{tmp_path}/from-file"\n')
    factflow = Factflow({})
    factflow.ok("storage", "put", "k", input=b"file")
    factflow.ok("storage", "put", "k", input=b"env", env={"FACTFLOW_STORAGE_URI": f"file://{tmp_path}/from-env"})
    factflow.ok("--storage", f"file://{tmp_path}/from-flag", "storage", "put", "k", input=b"flag",
                env={"FACTFLOW_STORAGE_URI": f"file://{tmp_path}/from-env"})
    for name in ("file", "env", "flag"):
        assert (tmp_path / f"from-{name}" / "k").read_bytes() == name.encode()


def test_default_storage_is_output_storage_under_the_working_directory():
    factflow = Factflow({})
    factflow.ok("storage", "put", "k", input=b"v")
    assert Path("output/storage/k").read_bytes() == b"v"


@pytest.mark.parametrize("args, says", [
    (("--storage", "ftp://host/x"), "file://, minio://, s3://"),
    (("--storage", "file://"), "names no path"),
    (("--config", "missing.toml"), "does not exist"),
])
def test_bad_settings_are_one_line_errors(args, says):
    Factflow({}).fails(*args, "storage", "list", says=says)


def test_broken_config_file_is_a_one_line_error():
    Path("factflow.toml").write_text("storage_uri = [unclosed\n")
    Factflow({}).fails("storage", "list", says="factflow.toml")


# -- global options and usage ------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("1h", 3600), ("1.5h", 5400),
                                           ("250ms", 0.25), ("10", 10), ("2d", 172800), (" 7 s ", 7)])
def test_timeout_durations(text, seconds):
    assert Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["soon", "5x", "-1s", "1h30m", "", "s"])
def test_bad_timeouts_are_usage_errors(ff, text):
    with pytest.raises(click.BadParameter):
        Duration().convert(text, None, None)
    ff.fails("--timeout", text, "config", "show", code=2, says="duration")


def test_timeout_goes_before_the_subcommand(ff):
    ff.ok("--timeout", "1h", "config", "show")


@pytest.mark.parametrize("args", [("nope",), ("storage", "nope"), ("storage", "get"), ("storage", "put"),
                                  ("--output", "yaml", "storage", "list"), ("storage", "list", "--bogus")])
def test_usage_errors_exit_2(ff, args):
    ff.fails(*args, code=2, says="Error")


def all_commands(group: click.Group, path=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # not .commands: the root imports its groups lazily
        command = group.get_command(ctx, name)
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, (*path, name))


@pytest.mark.parametrize("path", [(), *all_commands(cli)], ids=lambda path: " ".join(path) or "factflow")
def test_help_of_every_command(path):
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="factflow", catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: " + " ".join(("factflow", *path)))


def test_version():
    assert Factflow({}).ok("--version").stdout.startswith("factflow, version ")


_IMPORTS_PROBE = r"""
import runpy, sys
sys.argv = ["factflow", *sys.argv[1:]]
try:
    runpy.run_module("factflow_storage", run_name="__main__")
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"minio", "bottle", "waitress", "urllib3"})
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["storage", "--help"], ["storage", "list", "--help"],
                                  ["storage", "list", "--output", "json"]])
def test_help_and_filesystem_commands_do_not_import_minio_or_bottle(file_storage, args):
    probe = subprocess.run([sys.executable, "-c", _IMPORTS_PROBE, *args], capture_output=True, text=True,
                           env=file_storage.cli_env(), timeout=60)
    assert probe.stderr.splitlines()[-1] == "HEAVY=", probe.stderr


# -- CI ----------------------------------------------------------------------------------


def literal_blocks(text: str) -> list[str]:
    """The reStructuredText literal blocks of a README (paragraphs ending in '::')."""
    blocks, lines_, i = [], text.splitlines(), 0
    while i < len(lines_):
        if lines_[i].rstrip().endswith("::"):
            i += 1
            body = []
            while i < len(lines_) and (not lines_[i].strip() or lines_[i].startswith((" ", "\t"))):
                body.append(lines_[i].strip())
                i += 1
            blocks.append("\n".join(line for line in body if line))
        else:
            i += 1
    return blocks


def test_ci_runs_exactly_the_readme_test_command():
    blocks = literal_blocks((REPO / "README.rst").read_text())
    assert len(blocks) >= 2
    test_command = blocks[1]
    assert "pytest" in test_command
    ci_lines = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    assert test_command in ci_lines


@pytest.mark.parametrize("tests, code", [({}, 1), ({"test_ok.py": "def test_ok():\n    pass\n"}, 0),
                                         ({"test_bad.py": "def test_bad():\n    assert False\n"}, 1)])
def test_ci_script_fails_when_no_test_ran_or_one_failed(tmp_path, tests, code):
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    (checkout / "tests").mkdir()
    (checkout / ".ci/run").write_text((REPO / ".ci/run").read_text())
    (checkout / "tests/install-deps.sh").write_text("true\n")  # dependencies are already here
    for name, body in tests.items():
        (checkout / "tests" / name).write_text(body)
    result = subprocess.run(["bash", str(checkout / ".ci/run")], capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST")})
    assert result.returncode == code, result.stdout + result.stderr


def test_a_reader_that_goes_away_is_not_an_error(file_storage, tmp_path):
    """``factflow storage list | head -1`` exits 0 with nothing on stderr."""
    provider = file_storage.open()
    for number in range(5000):
        provider.write(f"executions/e1/r/s/m{number:05d}", b"x")
    env = {**file_storage.cli_env(), "PYTHONUNBUFFERED": "1"}
    pipeline = subprocess.run(
        ["bash", "-c", f"{shlex.quote(sys.executable)} -m factflow_storage storage list --execution e1 | head -1;"
                       " echo \"rc=${PIPESTATUS[0]}\" >&2"],
        capture_output=True, text=True, env=env, timeout=60)
    assert pipeline.stdout.endswith("executions/e1/r/s/m00000\n")
    assert pipeline.stderr == "rc=0\n"
