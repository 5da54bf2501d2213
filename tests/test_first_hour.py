"""A new user's first hour: no silent surprises (each case reproduced on the old code),
help pages with examples, and shell completion that loads and completes real keys."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import click
import orjson
import pytest

from factflow_storage.cli.main import cli
from factflow_storage.registry import parse_storage_uri
from cli_support import EXEC, HTML, MARKDOWN, on_a_terminal

REPO = Path(__file__).resolve().parent.parent


def run(env: dict, *args: str, cwd: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full = {**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "factflow_storage", *args], env=full, capture_output=True,
                          timeout=timeout, cwd=cwd)


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    env.update(extra)
    return env


def one_line_error(done: subprocess.CompletedProcess, says: str, code: int = 1) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    err = done.stderr.decode()
    assert done.stdout == b"" and "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("Error: ") and says in err, err


# -- unknown executions ------------------------------------------------------------------


@pytest.mark.parametrize("args", [["storage", "list", "--execution", "nope"],
                                  ["storage", "browse", "executions/nope/"],
                                  ["storage", "du", "--execution", "nope"]], ids=" ".join)
def test_an_execution_that_names_nothing_is_an_error(demo, args):
    code, out, err = demo.both(args)
    assert (code, out) == (1, b"")
    assert err == b"Error: no execution 'nope' (no record and no objects)\n"


def test_an_empty_prefix_listing_is_not_an_error(demo):
    assert demo.both(["storage", "list", "--prefix", "executions/nope/"]) == (0, b"", b"")
    assert demo.both(["storage", "browse", "nothing/"]) == (0, b"", b"no objects under 'nothing/'\n")


def test_an_execution_with_objects_but_no_record_lists(demo):
    with demo.storage.open() as provider:
        provider.write("executions/unrecorded/r/s/m", b"x", None)
    code, out, _ = demo.both(["storage", "list", "--execution", "unrecorded"])
    assert code == 0 and out.endswith(b"executions/unrecorded/r/s/m\n")


# -- the storage root and the URI --------------------------------------------------------


def test_reads_of_a_missing_root_fail_and_writes_create_it(tmp_path):
    root = tmp_path / "absent"
    env = clean_env(FACTFLOW_STORAGE_URI=f"file://{root}")
    for args in (["storage", "list"], ["storage", "browse"], ["execution", "list"], ["storage", "du"],
                 ["storage", "get", "a/b"]):
        one_line_error(run(env, *args), f"storage root {root} does not exist")
    assert not root.exists()
    assert run(env, "storage", "put", "a/b", "--file", os.devnull).returncode == 0
    assert run(env, "storage", "list").returncode == 0


def test_a_root_that_is_a_file_is_refused(tmp_path):
    root = tmp_path / "plain"
    root.write_bytes(b"not a directory")
    one_line_error(run(clean_env(FACTFLOW_STORAGE_URI=f"file://{root}"), "storage", "list"),
                   f"storage root {root} is not a directory")


def test_a_bare_path_gets_a_hint(tmp_path):
    one_line_error(run(clean_env(FACTFLOW_STORAGE_URI=str(tmp_path)), "storage", "list"),
                   f"did you mean file://{tmp_path}?")


@pytest.mark.parametrize("bucket", ["Bad_Bucket", "ab", "a" * 64, "-dash", "dot..dot", "192.168.1.1", "end-"])
def test_bad_bucket_names_are_one_line_before_any_request(tmp_path, bucket):
    env = clean_env(FACTFLOW_STORAGE_URI=f"minio://{bucket}", FACTFLOW_MINIO_ENDPOINT="127.0.0.1:9")
    one_line_error(run(env, "storage", "put", "k", "--file", os.devnull), f"invalid bucket name {bucket!r}")


@pytest.mark.parametrize("bucket", ["abc", "my-bucket.v2", "a" * 63, "0rigin"])
def test_good_bucket_names_pass(bucket):
    assert parse_storage_uri(f"minio://{bucket}/p").location == bucket


def test_unknown_toml_keys_are_named(tmp_path, file_storage):
    config = tmp_path / "factflow.toml"
    config.write_text(f'storage_uri = "{file_storage.uri}"\nstorag_uri = "x"\n[minio]\nendpont = "h:1"\n')
    done = run(clean_env(), "--config", str(config), "config", "show")
    assert done.returncode == 0
    err = done.stderr.decode().splitlines()
    assert f"factflow: config file {config}: unknown key 'storag_uri' ignored" in err
    assert f"factflow: config file {config}: unknown key 'minio.endpont' ignored" in err
    assert len(err) == 2


# -- execution lifecycle -----------------------------------------------------------------


def test_finish_of_an_unknown_id_is_refused(modes):
    assert modes.both(["storage", "put", "unrelated"], b"x")[0] == 0
    code, out, err = modes.both(["execution", "finish", "typo"])
    assert (code, out) == (1, b"")
    assert err == b"Error: no execution 'typo' (no record and no objects): start it first, or use --force\n"
    code, out, _ = modes.both(["execution", "show", "typo"])
    assert code == 1  # nothing was recorded
    assert modes.run(modes.direct_env, ["execution", "finish", "typo", "--force"])[0] == 0


def test_a_terminal_status_changes_only_with_force(demo):
    for args, action in ((["execution", "finish", EXEC, "--status", "failed"], "change its status"),
                         (["execution", "finish", EXEC], "change its status"),
                         (["execution", "start", EXEC], "reopen it")):
        code, out, err = demo.both(args)
        assert (code, out) == (1, b"")
        assert err == f"Error: execution '{EXEC}' is already completed: use --force to {action}\n".encode()
    shown = orjson.loads(demo.both(["execution", "show", EXEC, "-o", "json"])[1])
    assert shown["status"] == "completed"
    code, out, _ = demo.run(demo.api_env, ["execution", "start", EXEC, "--force", "-o", "json"])
    assert code == 0 and orjson.loads(out)["status"] == "running"
    assert demo.both(["execution", "start", EXEC])[0] == 0  # running again: starting is idempotent


# -- watch of a mistyped id ----------------------------------------------------------------


@pytest.mark.parametrize("args", [["storage", "watch", "--execution", "typo"], ["execution", "wait", "typo"]],
                         ids=" ".join)
def test_waiting_for_an_id_that_never_starts_says_so(file_storage, args):
    done = run(file_storage.cli_env(), "--timeout", "1s", *args)
    assert done.returncode == 1
    err = done.stderr.decode().splitlines()
    assert err[0].startswith("waiting for execution typo to start") and "Ctrl+C" in err[0]
    assert err[-1] == "Error: timed out after 1s waiting for execution typo to start: it has no record"


# -- --api config show, help examples, binary to a terminal ------------------------------------


def test_config_show_over_the_api_shows_the_servers_storage(modes):
    code, out, _ = modes.run(modes.api_env, ["config", "show", "-o", "json"])
    rows = {row["name"]: row for row in orjson.loads(out)["settings"]}
    assert code == 0
    assert rows["storage_uri"]["value"] == modes.storage.uri
    assert rows["storage_uri"]["source"] == f"api {modes.url}"


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # not .commands: the root imports its groups lazily
        sub = group.get_command(ctx, name)
        if isinstance(sub, click.Group):
            yield from _commands(sub, (*path, name))
        else:
            yield (*path, name)


@pytest.mark.parametrize("path", sorted(_commands(cli)), ids=" ".join)
def test_every_help_page_ends_with_examples(path):
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="factflow")
    assert result.exit_code == 0
    tail = result.output.rstrip().split("Examples:")
    assert len(tail) == 2, result.output
    examples = [line.strip() for line in tail[1].splitlines() if line.strip()]
    assert 1 <= len(examples) <= 3 and all(line.startswith(("factflow ", "source ", "FACTFLOW_", "echo ")) for line in examples)


def test_binary_to_a_terminal_is_refused_unless_forced(file_storage):
    env = file_storage.cli_env()
    assert run(env, "demo", "--execution", EXEC).returncode == 0
    code, seen = on_a_terminal(env, "storage", "get", HTML)
    assert code == 1 and b"is binary (application/gzip)" in seen and b"--to FILE" in seen
    assert b"\x1f\x8b" not in seen
    code, seen = on_a_terminal(env, "storage", "get", HTML, "--force")
    assert code == 0 and seen.startswith(b"\x1f\x8b")
    code, seen = on_a_terminal(env, "storage", "get", MARKDOWN)
    assert code == 0 and b"About getting-started." in seen
    piped = run(env, "storage", "get", HTML)  # a pipe is no terminal: bytes as they are
    assert piped.returncode == 0 and piped.stdout.startswith(b"\x1f\x8b")


# -- completion ----------------------------------------------------------------------------


@pytest.fixture
def on_path(tmp_path) -> str:
    """A ``factflow`` on PATH that runs this checkout, as an installed one would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "factflow"
    script.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m factflow_storage \"$@\"\n")
    script.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def _bash(env: dict, script: str) -> subprocess.CompletedProcess:
    full = {**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return subprocess.run(["bash", "-c", script], env=full, capture_output=True, timeout=60)


def test_completion_script_loads_in_bash(on_path):
    done = _bash(clean_env(PATH=on_path), "source <(factflow completion bash) && complete -p factflow")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == b"complete -o nosort -F _factflow_completion factflow"


@pytest.mark.parametrize("shell, marker", [("zsh", b"#compdef factflow"), ("fish", b"complete --no-files --command factflow")])
def test_completion_scripts_for_zsh_and_fish(shell, marker):
    done = run(clean_env(), "completion", shell)
    assert done.returncode == 0 and marker in done.stdout


def _complete(env: dict, *words: str) -> list[str]:
    words_shell = " ".join(shlex.quote(word) for word in ("factflow", *words))
    done = _bash(env, f"source <(factflow completion bash) && COMP_WORDS=({words_shell}) "
                      f"&& COMP_CWORD={len(words)} && _factflow_completion factflow "
                      '&& printf "%s\\n" "${COMPREPLY[@]}"')
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().splitlines()


def test_completion_of_keys_execution_ids_and_commands(storage, on_path):
    env = {**storage.cli_env(), "PATH": on_path}
    assert run(env, "demo", "--execution", EXEC).returncode == 0
    assert run(env, "demo", "--execution", "ex2").returncode == 0
    assert _complete(env, "storage", "get", f"executions/{EXEC}/mark") == [f"executions/{EXEC}/markdown_processor/"]
    assert _complete(env, "storage", "get", f"executions/{EXEC}/markdown_processor/chunker/msg-000") == [
        f"executions/{EXEC}/markdown_processor/chunker/msg-000{n}.json" for n in range(1, 6)]
    assert _complete(env, "storage", "list", "--execution", "ex") == [EXEC, "ex2"]
    assert _complete(env, "storage", "diff", EXEC, "ex") == [EXEC, "ex2"]
    assert _complete(env, "storage", "watch", "--execution", "ex") == [EXEC, "ex2"]
    assert _complete(env, "storage", "download", "e") == [EXEC, "ex2"]
    assert _complete(env, "storage", "d") == ["delete", "diff", "download", "du"]
    assert _complete(env, "storage", "du", "--") == ["--execution", "--depth", "--bytes", "--output", "--help"]


# -- the zipapp build ----------------------------------------------------------------------


def test_build_zipapp_without_shiv_says_how_to_get_it(tmp_path):
    # A site hook that hides shiv, as in a fresh venv without the [build] extra.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['shiv'] = None\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, str(REPO / "build_zipapp.py"), "--output", str(tmp_path / "f.pyz")],
                          env=env, capture_output=True, timeout=60)
    assert done.returncode == 1
    assert "pip install '.[build]'" in done.stderr.decode() and "Traceback" not in done.stderr.decode()
    assert not (tmp_path / "f.pyz").exists()


def test_completion_over_the_api(modes, on_path):
    assert modes.both(["demo", "--execution", EXEC])[0] == 0
    env = {**clean_env(PATH=on_path), "FACTFLOW_API_URL": modes.url,
           "FACTFLOW_STORAGE_URI": f"file://{modes.never}"}
    assert _complete(env, "storage", "browse", f"executions/{EXEC}/s") == [f"executions/{EXEC}/sitemap_scraper/"]
    assert _complete(env, "execution", "show", "e") == [EXEC]
    assert not os.path.exists(modes.never)


def test_serve_of_a_missing_root_says_so(tmp_path):
    import signal

    root = tmp_path / "absent"
    env = {**clean_env(FACTFLOW_STORAGE_URI=f"file://{root}"), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "factflow_storage", "serve", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().startswith(b"serving on http://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert f"note: storage root {root} does not exist yet; the first write creates it".encode() in err
    assert proc.returncode == 0 and not root.exists()
