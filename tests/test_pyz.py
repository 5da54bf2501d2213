"""``dist/factflow.pyz`` for real: built once per session into a temp dir by
``build_zipapp.py``, then run as a subprocess with ``SHIV_ROOT`` in a temp dir."""

from __future__ import annotations

import hashlib
import shlex
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import build_zipapp  # noqa: E402

PAYLOAD = hashlib.sha512(b"pyz").digest() * 4096 + bytes(range(256)) + b"\r\n\x00"


@pytest.fixture(scope="session")
def pyz(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist") / "factflow.pyz"
    built = subprocess.run([sys.executable, str(REPO / "build_zipapp.py"), "--output", str(out), "--quiet"],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path_factory.mktemp("cwd"))
    assert built.returncode == 0, built.stdout + built.stderr
    assert "runs only there" in built.stdout
    assert out.is_file() and os.access(out, os.X_OK)
    return out


@pytest.fixture(scope="session")
def shiv_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("shiv-root")


@pytest.fixture
def run(pyz, shiv_root, tmp_path):
    """Run the pyz like a user on a machine with only Python: isolated mode (-I, so neither
    the checkout nor user site-packages are seen) and no site-packages at all (-S)."""
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "PYTHON"))}
    env.update(SHIV_ROOT=str(shiv_root), HOME=str(tmp_path), FACTFLOW_STORAGE_URI=f"file://{tmp_path}/storage")

    def factflow(*args: str, stdin=None, stdout=subprocess.PIPE, python=(sys.executable, "-I", "-S")):
        return subprocess.run([*python, str(pyz), *args], input=stdin if isinstance(stdin, bytes) else None,
                              stdin=None if isinstance(stdin, bytes) or stdin is None else stdin,
                              stdout=stdout, stderr=subprocess.PIPE, env=env, cwd=work, timeout=120)

    return factflow


def ok(result) -> bytes:
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    return result.stdout


def one_line_error(result, code: int, says: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert b"Traceback" not in result.stderr
    text = result.stderr.decode()
    if code == 1:
        assert len(text.splitlines()) == 1 and text.startswith("Error: "), text
    assert says in text


def test_help(run):
    out = ok(run("--help")).decode()
    assert out.startswith("Usage: factflow")
    assert "storage" in out and "execution" in out
    assert ok(run("storage", "get", "--help")).startswith(b"Usage: factflow storage get")


def test_put_from_stdin_and_get_piped_to_a_file(run, tmp_path):
    ok(run("storage", "put", "executions/e1/r/s/blob.bin", stdin=PAYLOAD))
    target = tmp_path / "out.bin"
    with open(target, "wb") as handle:
        ok(run("storage", "get", "executions/e1/r/s/blob.bin", stdout=handle))
    assert target.read_bytes() == PAYLOAD


def test_put_from_a_file_and_read_it_every_way(run, tmp_path):
    source = tmp_path / "doc.json"
    source.write_bytes(b'{"n": 1}')
    stored = orjson.loads(ok(run("storage", "put", "executions/e1/r/s/doc.json", "--file", str(source),
                                 "--metadata", '{"lineage": ["x"]}', "--output", "json")))
    assert stored["checksum"] == "sha256:" + hashlib.sha256(b'{"n": 1}').hexdigest()
    with open(source, "rb") as handle:
        ok(run("storage", "put", "executions/e1/r/t/piped.json", "--file", "-", stdin=handle))

    assert orjson.loads(ok(run("storage", "browse", "executions/e1/r/", "--output", "json"))) == {
        "prefix": "executions/e1/r/", "common_prefixes": ["executions/e1/r/s/", "executions/e1/r/t/"],
        "objects": []}
    rows = [orjson.loads(line) for line in ok(run("storage", "list", "--execution", "e1", "-o", "json")).splitlines()]
    assert [row["key"] for row in rows] == ["executions/e1/r/s/doc.json", "executions/e1/r/t/piped.json"]
    assert orjson.loads(ok(run("storage", "metadata", "executions/e1/r/s/doc.json", "-o", "json"))) == stored
    assert orjson.loads(ok(run("storage", "get", "executions/e1/r/s/doc.json", "-o", "json")))["content"] == {"n": 1}
    assert b"PRE" in ok(run("storage", "browse", "executions/"))


def test_errors_are_one_line_with_exit_codes(run):
    one_line_error(run("storage", "get", "no/such/key"), 1, "does not exist")  # no root: nothing written yet
    ok(run("storage", "put", "some/key", stdin=b"x"))
    one_line_error(run("storage", "get", "no/such/key"), 1, "no object 'no/such/key'")
    one_line_error(run("storage", "get", "../escape"), 1, "invalid key")
    one_line_error(run("storage", "metadata", "a//b"), 1, "invalid key")
    one_line_error(run("--storage", "ftp://x", "storage", "list"), 1, "unknown storage URI")
    one_line_error(run("storage", "frobnicate"), 2, "No such command")
    one_line_error(run("storage", "get"), 2, "Missing argument")


def test_demo_then_explore(run):
    ok(run("demo", "--execution", "demo-pyz"))
    record = orjson.loads(ok(run("execution", "show", "demo-pyz", "-o", "json")))
    assert record["status"] == "completed"
    assert len(ok(run("storage", "list", "--execution", "demo-pyz")).splitlines()) == record["object_count"]


def test_runs_by_its_shebang(run, pyz):
    assert ok(run("--version", python=())).startswith(b"factflow, version ")


def test_refuses_a_foreign_python_in_one_line(tmp_path):
    # The start-up check the pyz carries, rendered for a target this machine is not.
    check = tmp_path / "check.py"
    check.write_text(build_zipapp.PREAMBLE.format(version="2.7", system="plan9", machine="mips"))
    result = subprocess.run([sys.executable, str(check)], capture_output=True, timeout=30)
    one_line_error(result, 1, "for Python 2.7 on plan9-mips")
    native = tmp_path / "native.py"
    native.write_text(build_zipapp.PREAMBLE.format(**dict(zip(("version", "system", "machine"),
                                                              build_zipapp.target(), strict=True))))
    assert subprocess.run([sys.executable, str(native)], capture_output=True, timeout=30).returncode == 0


def test_serves_the_console_files_from_inside_the_pyz(pyz, shiv_root, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "PYTHON"))}
    env.update(SHIV_ROOT=str(shiv_root), HOME=str(tmp_path), FACTFLOW_STORAGE_URI=f"file://{tmp_path}/storage")
    server = subprocess.Popen([sys.executable, "-I", "-S", str(pyz), "serve", "--port", "0"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:"), server.stderr.read()
        console = REPO / "factflow_storage" / "server" / "console"
        with urllib.request.urlopen(url + "/") as reply:
            assert reply.read() == (console / "index.html").read_bytes()
            assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
        for path in sorted(console.iterdir()):
            with urllib.request.urlopen(f"{url}/console/{path.name}") as reply:
                assert reply.read() == path.read_bytes(), path.name
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_ships_the_type_marker(pyz):
    # A type checker only reads an installed package's hints when it holds py.typed.
    import zipfile

    with zipfile.ZipFile(pyz) as archive:
        names = archive.namelist()
    assert any(name.endswith("site-packages/factflow_storage/py.typed") for name in names), names[:20]


def test_unpacks_with_bytecode_where_python_writes_none(pyz, tmp_path):
    """Hosts that set PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module from
    source on every run: the pyz writes its bytecode once, when it unpacks."""
    root = tmp_path / "shiv-root"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "PYTHON"))}
    env.update(SHIV_ROOT=str(root), HOME=str(tmp_path), PYTHONDONTWRITEBYTECODE="1",
               FACTFLOW_STORAGE_URI=f"file://{tmp_path}/storage")
    ok(subprocess.run([sys.executable, "-S", str(pyz), "storage", "put", "a/b"], input=b"x", capture_output=True,
                      env=env, cwd=tmp_path, timeout=120))
    [site] = root.glob("factflow.pyz_*/site-packages")
    sources = sorted(site.rglob("*.py"))
    assert len(sources) > 100 and any(path.parent.name == "factflow_storage" for path in sources)
    tag = sys.implementation.cache_tag
    missing = [str(path.relative_to(site)) for path in sources
               if not (path.parent / "__pycache__" / f"{path.stem}.{tag}.pyc").is_file()]
    assert missing == []


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(root)): (path.stat().st_mtime_ns, path.stat().st_size)
            for path in root.rglob("*")}


def test_later_runs_go_straight_to_the_unpacked_tree(pyz, tmp_path):
    """Once unpacked, a run imports nothing of shiv's bootstrap (its imports and its parse of
    the archive cost more than the listing itself), writes nothing into the unpacked tree
    (its bytecode is complete and current), and still puts its own modules first."""
    root = tmp_path / "shiv-root"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "PYTHON", "SHIV_"))}
    env.update(SHIV_ROOT=str(root), HOME=str(tmp_path), FACTFLOW_STORAGE_URI=f"file://{tmp_path}/storage")

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", str(pyz), *args], input=b"x",
                              capture_output=True, env={**env, **extra}, cwd=tmp_path, timeout=120)

    first = run("storage", "put", "a/b")
    assert first.returncode == 0, first.stderr.decode()
    assert b" _bootstrap\n" in first.stderr  # the first run unpacks through shiv
    unpacked = _tree(root)
    later = run("storage", "list")
    assert later.returncode == 0, later.stderr.decode()
    assert later.stdout.split()[-1] == b"a/b"
    imported = {line.rsplit("|", 1)[-1].strip() for line in later.stderr.decode().splitlines()}
    assert not imported & {"_bootstrap", "compileall", "zipfile", "subprocess"}, imported
    assert _tree(root) == unpacked
    [site] = root.glob("factflow.pyz_*/site-packages")
    verbose = subprocess.run([sys.executable, "-I", "-S", "-v", str(pyz), "--version"], capture_output=True, text=True,
                             env=env, cwd=tmp_path, timeout=120)
    assert verbose.returncode == 0, verbose.stderr
    package = site / "factflow_storage" / "__pycache__" / f"__init__.{sys.implementation.cache_tag}.pyc"
    assert f"# code object from '{package}'" in verbose.stderr  # its own copy, from bytecode
    # Any other SHIV_ setting is shiv's to honour, so those runs take its bootstrap.
    entry = run("--version", SHIV_ENTRY_POINT="factflow_storage.cli.entry:main")
    assert entry.returncode == 0 and b" _bootstrap\n" in entry.stderr, entry.stderr.decode()


@pytest.fixture
def bare_path(tmp_path) -> str:
    """A PATH with python3 and the system's tools but no ``factflow``, as on a host the pyz
    was copied to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    return f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin"


def _complete_in_bash(env: dict, pyz: Path, command: str, words: list[str]) -> list[str]:
    """Source the pyz's bash script as README says, then TAB at the last of ``words`` with
    the function bash would call for ``command``."""
    quoted = " ".join(shlex.quote(word) for word in words)
    script = (f"source <(python3 {shlex.quote(str(pyz))} completion bash) || exit 3\n"
              "command -v factflow && exit 4\n"
              f"spec=$(complete -p {shlex.quote(command)}) || exit 5\n"
              '[[ $spec =~ -F\\ ([^ ]+) ]] || exit 6\n'
              f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
              f'"${{BASH_REMATCH[1]}}" {shlex.quote(command)} "${{COMP_WORDS[COMP_CWORD]}}" x\n'
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout.decode().splitlines()


def test_completion_and_hints_name_the_pyz_as_invoked(pyz, shiv_root, tmp_path, bare_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "PYTHON"))}
    env.update(SHIV_ROOT=str(shiv_root), HOME=str(tmp_path), PATH=bare_path,
               FACTFLOW_STORAGE_URI=f"file://{tmp_path}/storage")
    demo = subprocess.run(["python3", str(pyz), "demo", "--execution", "demo-pyz"], env=env, capture_output=True,
                          timeout=120)
    assert demo.returncode == 0, demo.stderr
    hints = [line.strip() for line in demo.stdout.decode().splitlines() if line.startswith("  ")]
    assert hints and all(line.startswith(f"python3 {pyz} storage ") for line in hints), hints

    prefix = "executions/demo-pyz/markdown_processor/chunker/msg-000"
    expected = [f"{prefix}{n}.json" for n in range(1, 6)]
    assert _complete_in_bash(env, pyz, "python3", ["python3", str(pyz), "storage", "get", prefix]) == expected
    assert _complete_in_bash(env, pyz, "python3", ["python3", str(pyz), "storage", "d"]) == [
        "delete", "diff", "download", "du"]
    assert _complete_in_bash(env, pyz, pyz.name, [str(pyz), "storage", "list", "--execution", "demo-p"]) == [
        "demo-pyz"]


def test_zsh_completion_from_the_pyz_says_how_to_make_a_wrapper(pyz, shiv_root, tmp_path, bare_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "PYTHON"))}
    env.update(SHIV_ROOT=str(shiv_root), HOME=str(tmp_path), PATH=bare_path)
    done = subprocess.run(["python3", str(pyz), "completion", "zsh"], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith(b"#compdef factflow")
    hint = done.stderr.decode()
    assert len(hint.splitlines()) == 1
    wrapper = hint.split("this archive: ", 1)[1]
    assert subprocess.run(["bash", "-c", wrapper], env=env, timeout=30).returncode == 0
    made = subprocess.run([str(tmp_path / ".local" / "bin" / "factflow"), "--version"], env=env,
                          capture_output=True, timeout=120)
    assert made.returncode == 0 and made.stdout.startswith(b"factflow, version "), made.stderr


def test_a_first_run_killed_while_it_compiles_leaves_the_next_run_free(pyz, tmp_path):
    """kill -9 of the first run mid-unpack (an OOM kill, a container's timeout) must not
    leave anything holding shiv's unpack lock: the next run unpacks again and works."""
    import signal
    import time

    root = tmp_path / "shiv-root"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTFLOW_", "PYTHON", "SHIV_"))}
    env.update(SHIV_ROOT=str(root), HOME=str(tmp_path), FACTFLOW_STORAGE_URI=f"file://{tmp_path}/storage")
    first = subprocess.Popen([sys.executable, "-I", "-S", str(pyz), "--version"], env=env, cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        # Compiling: the unpacked tree (still named .tmp) has its first bytecode.
        while not any(root.glob("*.tmp/site-packages/**/__pycache__/*.pyc")):
            assert first.poll() is None, "the first run finished before it was seen compiling"
            assert time.monotonic() < deadline, "the first run never started compiling"
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait()
    again = subprocess.run([sys.executable, "-I", "-S", str(pyz), "--version"], capture_output=True, env=env,
                           cwd=tmp_path, timeout=90)
    assert again.returncode == 0, again.stderr.decode()
    assert b"factflow" in again.stdout.lower()
