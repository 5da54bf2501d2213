"""200 MiB up and down through the S3 provider and the CLI with bounded memory.

Peak memory is the ``ru_maxrss`` that ``wait4`` reports for the process that moved the
bytes. That process is started by a small launcher, not by pytest: Linux carries the
parent's peak over a fork and exec into the child's ``ru_maxrss``, so a direct child of a
large test process would report the test process's size. The bound is a correctness
property, not a speed measurement: buffering the object anywhere would blow through it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading

import orjson
import pytest

pytestmark = [pytest.mark.s3, pytest.mark.slow]

SIZE = 200 * 1024 * 1024
PEAK_BOUND_KIB = 100 * 1024
CHUNK = 1024 * 1024

PROVIDER_SCRIPT = r"""
import hashlib, os, sys
import orjson
from factflow_storage import create_storage_provider

class Source:
    '''200 MiB of fresh random bytes, made as they are read: nothing to hold on to.'''
    def __init__(self, size):
        self.left, self.digest = size, hashlib.sha256()
    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left, 1 << 20)
        chunk = os.urandom(n)
        self.left -= n
        self.digest.update(chunk)
        return chunk

uri, options, size = sys.argv[1], orjson.loads(sys.argv[2]), int(sys.argv[3])
provider = create_storage_provider(uri, options)
source = Source(size)
stored = provider.write("big/200mib.bin", source)
down, length = hashlib.sha256(), 0
with provider.open("big/200mib.bin") as stream:
    for chunk in stream:
        down.update(chunk)
        length += len(chunk)
sys.stdout.write(orjson.dumps({
    "sent": "sha256:" + source.digest.hexdigest(), "stored": stored["checksum"],
    "stored_length": stored["content_length"], "received": "sha256:" + down.hexdigest(),
    "received_length": length, "metadata": provider.metadata("big/200mib.bin")["checksum"]}).decode())
"""

LAUNCHER = r"""
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as handle:
    handle.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.fixture
def target(s3_server):
    bucket = s3_server.new_bucket()
    yield f"minio://{bucket}", s3_server
    client = s3_server.client()  # memstore keeps objects in RAM: give it back
    for found in client.list_objects(bucket_name=bucket, recursive=True):
        client.remove_object(bucket_name=bucket, object_name=found.object_name)


def run_measured(argv: list[str], env: dict[str, str], peak_file, feed=None, drain=None) -> tuple[int, int, bytes]:
    """Run argv under the launcher, feeding stdin and draining stdout; (status, peak KiB, stderr)."""
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(peak_file), *argv], env=env,
                            stdin=subprocess.PIPE if feed else subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    errors: list[bytes] = []
    threads = [threading.Thread(target=lambda: errors.append(proc.stderr.read()))]
    if feed:
        threads.append(threading.Thread(target=feed, args=(proc.stdin,)))
    threads.append(threading.Thread(target=drain or (lambda out: out.read()), args=(proc.stdout,)))
    for thread in threads:
        thread.start()
    status = proc.wait(timeout=600)
    for thread in threads:
        thread.join()
    return status, int(peak_file.read_text()), b"".join(errors)


def test_provider_streams_200_mib_both_ways_in_bounded_memory(target, tmp_path):
    uri, server = target
    out: list[bytes] = []
    status, peak, stderr = run_measured([sys.executable, "-c", PROVIDER_SCRIPT, uri,
                                         orjson.dumps(server.options()).decode(), str(SIZE)],
                                        dict(os.environ), tmp_path / "peak", drain=lambda o: out.append(o.read()))
    assert status == 0, stderr.decode()[-3000:]
    report = orjson.loads(b"".join(out))
    assert report["stored_length"] == report["received_length"] == SIZE
    assert report["sent"] == report["stored"] == report["received"] == report["metadata"]
    assert 0 < peak < PEAK_BOUND_KIB, f"peak {peak / 1024:.0f} MiB"


def test_cli_put_from_a_pipe_and_get_to_a_pipe_in_bounded_memory(target, tmp_path):
    uri, server = target
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    env.update(server.env(), FACTFLOW_STORAGE_URI=uri)
    sent = hashlib.sha256()

    def feed(stdin) -> None:
        left = SIZE
        while left:
            chunk = os.urandom(min(CHUNK, left))
            sent.update(chunk)
            stdin.write(chunk)
            left -= len(chunk)
        stdin.close()

    status, peak_put, stderr = run_measured([sys.executable, "-m", "factflow_storage", "storage", "put",
                                             "big/piped.bin"], env, tmp_path / "put", feed=feed)
    assert status == 0, stderr.decode()
    assert 0 < peak_put < PEAK_BOUND_KIB, f"put peaked at {peak_put / 1024:.0f} MiB"

    received, length = hashlib.sha256(), [0]

    def drain(stdout) -> None:
        while chunk := stdout.read(CHUNK):
            received.update(chunk)
            length[0] += len(chunk)

    status, peak_get, stderr = run_measured([sys.executable, "-m", "factflow_storage", "storage", "get",
                                             "big/piped.bin"], env, tmp_path / "get", drain=drain)
    assert status == 0, stderr.decode()
    assert length[0] == SIZE
    assert received.hexdigest() == sent.hexdigest()
    assert 0 < peak_get < PEAK_BOUND_KIB, f"get peaked at {peak_get / 1024:.0f} MiB"
