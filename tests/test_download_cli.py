"""``factflow storage download`` as a user runs it: a subprocess, on every storage kind, in
direct mode and through a real server (``--api``), checked by the files it leaves."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import zipfile

import orjson
import pytest

from factflow_storage.download.tree import STAGING_DIR
from factflow_storage.zipformat.layout import sidecar_bytes
from factflow_storage.server.app import stop_server
from factflow_storage.service import StorageService
from server_fixture import running_server
from tree_support import files_under

MODES = ("direct", "api")


class Target:
    """One storage kind in one mode: how to run the CLI, and the storage to check against."""

    def __init__(self, storage, mode: str, service: StorageService, url: str | None):
        self.storage, self.mode, self.service, self.url = storage, mode, service, url

    def env(self) -> dict:
        env = self.storage.cli_env()
        if self.url:
            env["FACTFLOW_API_URL"] = self.url
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "factflow_storage", "storage", "download", *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(self.argv(*args), env=self.env(), capture_output=True, text=True, timeout=300)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def download(self, out_dir, *args: str) -> dict:
        return orjson.loads(self.run("E1", "--output-dir", str(out_dir), "--output", "json", *args).stdout)


@pytest.fixture(params=MODES)
def target(request, storage):
    service = StorageService(storage.open())
    if request.param == "direct":
        yield Target(storage, "direct", service, None)
    else:
        with running_server(service, threads=16) as url:
            yield Target(storage, "api", service, url)
    service.provider.close()


def populate(service: StorageService, execution_id: str = "E1", count: int = 9, size: int = 0) -> dict[str, bytes]:
    objects = {
        f"executions/{execution_id}/fetch/html/page-{n}.html": (f"<p>{n}</p>".encode() + b"." * size)
        for n in range(count)
    }
    objects[f"executions/{execution_id}/parse/md/nested/msg/id.md"] = "# ünïcode\n".encode()
    objects[f"executions/{execution_id}/parse/json/blob.bin"] = bytes(range(256)) * 1000
    objects[f"executions/{execution_id}/parse/json/empty"] = b""
    service.set_execution_status(execution_id, "running")
    for key, data in objects.items():
        service.put(key, data, {"adapter": "test", "lineage": [key]})
    service.set_execution_status(execution_id, "completed")
    return objects


def expected_tree(service: StorageService, objects: dict[str, bytes], metadata: bool = True) -> dict[str, bytes]:
    wanted = dict(objects)
    if metadata:
        wanted.update({key + ".meta.json": sidecar_bytes(service.metadata(key)) for key in objects})
    return wanted


def test_the_tree_holds_every_key_its_bytes_and_its_metadata(target, tmp_path):
    objects = populate(target.service)
    summary = target.download(tmp_path / "out")
    assert files_under(tmp_path / "out") == expected_tree(target.service, objects)
    assert (summary["mode"], summary["objects"], summary["fetched"], summary["skipped"]) == \
        (target.mode, len(objects), len(objects), 0)
    assert summary["bytes"] == sum(map(len, objects.values())) and summary["failed"] == []

    key = "executions/E1/parse/md/nested/msg/id.md"
    shown = subprocess.run([sys.executable, "-m", "factflow_storage", "storage", "metadata", key,
                            "--output", "json"], env=target.env(), capture_output=True, check=True)
    sidecar = (tmp_path / "out" / (key + ".meta.json")).read_bytes()
    assert orjson.loads(sidecar) == orjson.loads(shown.stdout)


def test_a_rerun_fetches_only_what_is_missing_or_differs(target, tmp_path):
    objects = populate(target.service)
    out = tmp_path / "out"
    target.download(out)
    missing = out / "executions/E1/fetch/html/page-3.html"
    changed = out / "executions/E1/fetch/html/page-4.html"
    lost_sidecar = out / "executions/E1/fetch/html/page-5.html.meta.json"
    missing.unlink()
    changed.write_bytes(b"X" * len(objects["executions/E1/fetch/html/page-4.html"]))
    lost_sidecar.unlink()
    untouched = {path: (os.stat(path).st_ino, os.stat(path).st_mtime_ns)
                 for path in (out / "executions/E1/parse/json/blob.bin", out / "executions/E1/fetch/html/page-5.html",
                              out / "executions/E1/parse/json/empty.meta.json")}

    summary = target.download(out)
    assert (summary["fetched"], summary["skipped"]) == (2, len(objects) - 2)
    assert summary["sidecars"] == 3  # two fetched objects' sidecars and the lost one
    assert files_under(out) == expected_tree(target.service, objects)
    assert {path: (os.stat(path).st_ino, os.stat(path).st_mtime_ns) for path in untouched} == untouched

    again = target.download(out)
    assert (again["fetched"], again["skipped"], again["sidecars"]) == (0, len(objects), 0)


def test_no_metadata_route_and_stage_narrow_what_is_written(target, tmp_path):
    objects = populate(target.service)
    target.download(tmp_path / "a", "--no-metadata")
    assert files_under(tmp_path / "a") == objects

    summary = target.download(tmp_path / "b", "--route", "parse", "--stage", "json")
    wanted = {k: v for k, v in objects.items() if "/parse/json/" in k}
    assert summary["objects"] == len(wanted) == 2
    assert files_under(tmp_path / "b") == expected_tree(target.service, wanted)

    target.download(tmp_path / "c", "--stage", "md", "--stage", "html", "--no-metadata")
    assert files_under(tmp_path / "c") == {k: v for k, v in objects.items() if "/md/" in k or "/html/" in k}


def test_resume_after_the_download_is_killed(target, tmp_path):
    objects = populate(target.service, count=300, size=96 * 1024)
    out = tmp_path / "out"
    process = subprocess.Popen(target.argv("E1", "--output-dir", str(out), "--jobs", "2", "--quiet"),
                               env=target.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while sum(1 for name in tree_names(out) if not name.endswith(".meta.json")) < 5:
            assert process.poll() is None, "the download ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        process.kill()
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    first = files_under(out)
    first.pop(os.path.join(STAGING_DIR, "lock"), None)
    partial = {name for name in first if name.startswith(STAGING_DIR)}
    kept = {name: data for name, data in first.items() if name not in partial}
    kept_objects = {name for name in kept if not name.endswith(".meta.json")}
    assert 5 <= len(kept_objects) < len(objects)
    for name, data in kept.items():  # nothing under a final name is half-written
        assert data == (objects[name] if name in objects else sidecar_bytes(target.service.metadata(name[:-10])))
    stamps = {name: os.stat(out / name).st_mtime_ns for name in kept_objects}

    summary = target.download(out, "--jobs", "4")
    assert summary["skipped"] == len(kept_objects)
    assert summary["fetched"] == len(objects) - len(kept_objects)
    assert files_under(out) == expected_tree(target.service, objects)
    assert {name: os.stat(out / name).st_mtime_ns for name in kept_objects} == stamps


def tree_names(root) -> list[str]:
    return [os.path.relpath(os.path.join(d, n), root) for d, _, names in os.walk(root) for n in names
            if STAGING_DIR not in d]


def test_unknown_executions_and_bad_arguments_fail_in_one_line(target, tmp_path):
    populate(target.service)
    (tmp_path / "file").write_text("not a directory")
    for args, message in ((["NOPE", "--output-dir", str(tmp_path / "o")], "no execution 'NOPE'"),
                          (["a/b", "--output-dir", str(tmp_path / "o")], "invalid execution id"),
                          (["E1", "--output-dir", str(tmp_path / "o"), "--route", "x/y"], "invalid route"),
                          (["E1", "--output-dir", str(tmp_path / "file")], "cannot create")):
        result = target.run(*args, check=False)
        assert result.returncode == 1, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert not (tmp_path / "o" / "executions").exists()


def test_progress_bar_only_on_a_terminal(file_storage, tmp_path):
    import pty

    service = StorageService(file_storage.open())
    populate(service)
    target = Target(file_storage, "direct", service, None)
    plain = target.run("E1", "--output-dir", str(tmp_path / "a"))
    assert plain.stderr == "" and plain.stdout.startswith("downloaded 12 objects")

    for args, shown in (([], True), (["--quiet"], False)):
        controller, terminal = pty.openpty()
        result = subprocess.run(target.argv("E1", "--output-dir", str(tmp_path / f"b{len(args)}"), *args),
                                env=target.env(), stdout=subprocess.PIPE, stderr=terminal, timeout=120)
        os.close(terminal)
        seen = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(controller, 65536):
                seen += chunk
        os.close(controller)
        assert result.returncode == 0
        assert (b"12/12 objects" in seen and b"/s" in seen) is shown, seen


def test_a_hostile_archive_is_refused_and_nothing_lands_outside(file_storage, tmp_path):
    """A server that answers the download with a crafted zip (a real waitress, real app
    for every other route)."""

    from waitress import create_server

    from factflow_storage.server.app import make_app

    service = StorageService(file_storage.open())
    populate(service)
    results = {}
    for name, (member, data, attr) in {
        "absolute": (str(tmp_path / "evil-absolute"), b"evil", None),
        "dotdot": ("executions/E1/../../../evil-dotdot", b"evil", None),
        "symlink": ("executions/E1/fetch/html/page-0.html", str(tmp_path / "evil-link").encode(),
                    (stat.S_IFLNK | 0o777) << 16),
    }.items():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            info = zipfile.ZipInfo(member)
            if attr:
                info.create_system, info.external_attr = 3, attr
            archive.writestr(info, data)
        crafted = buffer.getvalue()
        app = make_app(service)

        def hostile(environ, start_response, app=app, crafted=crafted):
            if environ["PATH_INFO"].endswith("/stream"):
                start_response("200 OK", [("Content-Type", "application/zip"),
                                          ("Content-Length", str(len(crafted)))])
                return [crafted]
            return app(environ, start_response)

        server = create_server(hostile, host="127.0.0.1", port=0, threads=4)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            env = {**file_storage.cli_env(), "FACTFLOW_API_URL": f"http://127.0.0.1:{server.effective_port}"}
            results[name] = subprocess.run(
                [sys.executable, "-m", "factflow_storage", "storage", "download", "E1",
                 "--output-dir", str(tmp_path / "out" / name)], env=env, capture_output=True, text=True, timeout=120)
        finally:
            stop_server(server)
            thread.join(timeout=5)
    for name, result in results.items():
        assert result.returncode == 1, (name, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "refusing archive member" in result.stderr
    assert not any("evil" in entry for entry in os.listdir(tmp_path))
    for directory, _, names in os.walk(tmp_path / "out"):
        for entry in names:
            path = os.path.join(directory, entry)
            assert not os.path.islink(path)
            assert open(path, "rb").read() != str(tmp_path / "evil-link").encode()


def test_ctrl_c_in_direct_mode_stops_every_worker(file_storage, tmp_path):
    from factflow_storage.cli.download import INTERRUPTED

    service = StorageService(file_storage.open())
    objects = populate(service, count=300, size=96 * 1024)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "factflow_storage", "storage", "download", "E1",
                                "--output-dir", str(out), "--jobs", "2", "--quiet"],
                               env=file_storage.cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while sum(1 for name in tree_names(out) if not name.endswith(".meta.json")) < 5:
        assert process.poll() is None, "the download ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.decode().strip() == INTERRUPTED
    kept = {name: data for name, data in files_under(out).items() if not name.startswith(STAGING_DIR)}
    assert 5 <= len([name for name in kept if not name.endswith(".meta.json")]) < len(objects)
    for name, data in kept.items():  # nothing under a final name is half-written
        assert data == (objects[name] if name in objects else sidecar_bytes(service.metadata(name[:-10])))
