"""A real S3 server on loopback for the test suite and the benchmarks.

A ``minio`` server binary on PATH is used when there is one; otherwise Ceph's radosgw
with one monitor and one OSD on the in-memory object store, no cephx, and radosgw's beast
frontend. Every daemon runs in the foreground as our child, in a temp dir, on free
loopback ports, and is stopped by its pid (it also dies with us, through the parent-death
signal, if this process is killed outright).

Run ``python3 tests/s3server.py`` to start one by hand: it prints the endpoint, the keys
and the ``FACTFLOW_MINIO_*`` variables, and stays up until Ctrl+C.
"""

from __future__ import annotations

import ctypes
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field

ACCESS_KEY = "FACTFLOWTESTKEY"
SECRET_KEY = "factflow-test-secret-key"
REGION = "us-east-1"
READY_TIMEOUT = 90.0
RCLONE_REMOTE = "ffs3"
_PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    """The S3 server could not be started; the message carries the daemons' last words."""


@dataclass
class S3Server:
    kind: str
    endpoint: str  # host:port
    workdir: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    processes: list[subprocess.Popen] = field(default_factory=list)
    users: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def env(self) -> dict[str, str]:
        """The ``FACTFLOW_MINIO_*`` variables that point the CLI at this server."""
        return {
            "FACTFLOW_MINIO_ENDPOINT": self.endpoint,
            "FACTFLOW_MINIO_ACCESS_KEY": self.access_key,
            "FACTFLOW_MINIO_SECRET_KEY": self.secret_key,
            "FACTFLOW_MINIO_SECURE": "false",
            "FACTFLOW_MINIO_REGION": self.region,
        }

    def options(self) -> dict[str, object]:
        """Provider options, as ``Settings.provider_options()`` would build them."""
        return {"endpoint": self.endpoint, "access_key": self.access_key, "secret_key": self.secret_key,
                "secure": False, "region": self.region, "create_bucket": False}

    def tool_env(self) -> dict[str, str]:
        """Environment for ``aws`` and ``rclone`` (remote ``ffs3:``) aimed at this server.

        Any AWS/rclone settings of the user are dropped, AWS_CA_BUNDLE included: it points
        at a bundle rclone cannot load, and plain HTTP needs none.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
        remote = f"RCLONE_CONFIG_{RCLONE_REMOTE.upper()}_"
        env.update({
            "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region, "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "RCLONE_CONFIG": os.devnull,
            remote + "TYPE": "s3", remote + "PROVIDER": "Minio" if self.kind == "minio" else "Ceph",
            remote + "ENDPOINT": self.url, remote + "ACCESS_KEY_ID": self.access_key,
            remote + "SECRET_ACCESS_KEY": self.secret_key, remote + "REGION": self.region,
        })
        return env

    def aws(self, *args: str) -> list[str]:
        return ["aws", "--endpoint-url", self.url, *args]

    def add_user(self, access_key: str, secret_key: str) -> None:
        """Another account, with no rights on the buckets of the first (idempotent)."""
        if access_key in self.users:
            return
        self.users.add(access_key)
        if self.kind == "minio":
            from minio import MinioAdmin
            from minio.credentials import StaticProvider

            credentials = StaticProvider(access_key=self.access_key, secret_key=self.secret_key)
            admin = MinioAdmin(endpoint=self.endpoint, credentials=credentials, secure=False)
            admin.user_add(access_key=access_key, secret_key=secret_key)
            return
        _run(["radosgw-admin", "-c", os.path.join(self.workdir, "ceph.conf"), "-n", "client.admin", "user",
              "create", "--uid", access_key.lower(), "--display-name", access_key, "--access-key", access_key,
              "--secret-key", secret_key])

    def client(self, **overrides):
        from minio import Minio

        kwargs = dict(endpoint=self.endpoint, access_key=self.access_key, secret_key=self.secret_key,
                      secure=False, region=self.region)
        kwargs.update(overrides)
        return Minio(**kwargs)

    def new_bucket(self) -> str:
        bucket = f"ff-{uuid.uuid4().hex[:20]}"
        self.client().make_bucket(bucket_name=bucket)
        return bucket

    def warm_up(self) -> None:
        """radosgw creates its pools lazily: the first bucket and the first put take ~2 s each."""
        client = self.client()
        bucket = "warm-up-" + uuid.uuid4().hex[:8]
        client.make_bucket(bucket_name=bucket)
        client.put_object(bucket_name=bucket, object_name="warm-up", data=io.BytesIO(b"x"), length=1)
        client.remove_object(bucket_name=bucket, object_name="warm-up")
        client.remove_bucket(bucket_name=bucket)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            _stop(proc)
        self.processes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(*, warm_up: bool = True) -> S3Server:
    """Start a server (minio when on PATH, else radosgw); raise ServerError if it cannot."""
    workdir = tempfile.mkdtemp(prefix="factflow-s3-")
    server = S3Server("minio" if shutil.which("minio") else "radosgw", "", workdir)
    try:
        if server.kind == "minio":
            _start_minio(server)
        else:
            _start_radosgw(server)
        if warm_up:
            server.warm_up()
    except BaseException as err:
        logs = _log_tails(workdir)
        server.stop()
        if isinstance(err, ServerError):
            raise ServerError(f"{err}\n{logs}") from None
        if isinstance(err, Exception):
            raise ServerError(f"{server.kind} failed to start: {err!r}\n{logs}") from err
        raise
    return server


# -- minio -------------------------------------------------------------------

def _start_minio(server: S3Server) -> None:
    port, console = free_port(), free_port()
    server.endpoint = f"127.0.0.1:{port}"
    env = dict(os.environ, MINIO_ROOT_USER=server.access_key, MINIO_ROOT_PASSWORD=server.secret_key,
               MINIO_BROWSER="off")
    _spawn(server, "minio", ["minio", "server", os.path.join(server.workdir, "data"),
                             "--address", server.endpoint, "--console-address", f"127.0.0.1:{console}"], env=env)
    _wait_http(server, f"{server.url}/minio/health/ready")


# -- radosgw -----------------------------------------------------------------

_CEPH_CONF = """\
[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
# Without these, clients still ask for secure monitor sessions and loop on -13.
ms mon client mode = crc
ms client mode = crc
ms service mode = crc
ms cluster mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 8589934592
run dir = {dir}/run
log file = {dir}/log/$name.log
admin socket = {dir}/run/$name.asok
[mon.a]
mon data = {dir}/mon
[osd.0]
osd data = {dir}/osd
[client.rgw]
# tcp_nodelay: without it every GET answer waits ~40 ms (Nagle against the client's delayed ACK)
rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw data = {dir}/rgw
rgw dns name = 127.0.0.1
"""


def _start_radosgw(server: S3Server) -> None:
    for binary in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph"):
        if not shutil.which(binary):
            raise ServerError(f"{binary} is not installed: run sh tests/install-deps.sh")
    root = server.workdir
    for sub in ("run", "log", "mon", "osd", "rgw"):
        os.makedirs(os.path.join(root, sub))
    fsid = str(uuid.uuid4())
    mon_port, rgw_port = free_port(), free_port()
    conf = os.path.join(root, "ceph.conf")
    with open(conf, "w") as handle:
        handle.write(_CEPH_CONF.format(fsid=fsid, mon_port=mon_port, rgw_port=rgw_port, dir=root))
    monmap = os.path.join(root, "monmap")
    _run(["monmaptool", "--create", "--addv", "a", f"[v2:127.0.0.1:{mon_port}]", "--fsid", fsid, monmap])
    _run(["ceph-mon", "--mkfs", "-i", "a", "-c", conf, "--monmap", monmap])
    _spawn(server, "mon", ["ceph-mon", "-f", "-i", "a", "-c", conf])
    osd_uuid = str(uuid.uuid4())
    _run(["ceph", "-c", conf, "--connect-timeout", "30", "osd", "new", osd_uuid])
    _run(["ceph-osd", "-i", "0", "-c", conf, "--mkfs", "--osd-uuid", osd_uuid])
    _spawn(server, "osd", ["ceph-osd", "-f", "-i", "0", "-c", conf])
    _spawn(server, "rgw", ["radosgw", "-f", "-n", "client.rgw", "-c", conf])
    server.endpoint = f"127.0.0.1:{rgw_port}"
    _wait_http(server, server.url + "/")
    _run(["radosgw-admin", "-c", conf, "-n", "client.admin", "user", "create", "--uid", "factflow",
          "--display-name", "factflow tests", "--access-key", server.access_key,
          "--secret-key", server.secret_key])


# -- processes ---------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    # A daemon outliving a killed test run would hold memory and ports for good.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _spawn(server: S3Server, name: str, argv: list[str], env: dict | None = None) -> None:
    log = open(os.path.join(server.workdir, f"{name}.out"), "wb")
    with log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True, preexec_fn=_die_with_parent)
    server.processes.append(proc)


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:
        raise ServerError(f"{argv[0]} did not finish within 60 s") from err
    if done.returncode:
        raise ServerError(f"{' '.join(argv[:3])} failed ({done.returncode}): "
                          f"{(done.stderr or done.stdout).decode(errors='replace')[-2000:]}")


def _wait_http(server: S3Server, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        for proc in server.processes:
            if proc.poll() is not None:
                raise ServerError(f"{proc.args[0]} exited with status {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise ServerError(f"{server.kind} did not answer on {url} within {READY_TIMEOUT:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _log_tails(workdir: str, lines: int = 15) -> str:
    tails = []
    for directory in (workdir, os.path.join(workdir, "log")):
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if name.endswith((".out", ".log")) and os.path.isfile(path):
                with open(path, "rb") as handle:
                    text = handle.read()[-8192:].decode(errors="replace").splitlines()[-lines:]
                tails.append(f"--- {name}\n" + "\n".join(text))
    return "\n".join(tails)


def main() -> int:
    print("starting an S3 server...", file=sys.stderr, flush=True)
    try:
        server = start()
    except ServerError as err:
        print(err, file=sys.stderr)
        return 1
    stop_requested: list[int] = []
    # Installed explicitly: a shell starts background jobs with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.append(1))
    try:
        print(f"{server.kind} at {server.url}")
        print(f"access key {server.access_key}\nsecret key {server.secret_key}\nregion {server.region}")
        for name, value in server.env().items():
            print(f"export {name}={value}")
        print("Ctrl+C stops it.", flush=True)
        while not stop_requested:
            time.sleep(0.5)
    finally:
        server.stop()
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
