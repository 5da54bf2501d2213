"""Running the aws cli, rclone and ``factflow`` against the suite's S3 server, for the
interoperability tests: each call must succeed, and a failure shows the tool's stderr."""

from __future__ import annotations

import os
import subprocess
import sys


def tool(s3_server, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``aws`` or ``rclone`` (remote ``ffs3:``) with credentials for ``s3_server`` only."""
    done = subprocess.run(argv, env=s3_server.tool_env(), capture_output=True, timeout=120, **kwargs)
    assert done.returncode == 0, (argv, done.stderr.decode()[-2000:])
    return done


def factflow(s3_server, bucket: str, *args: str) -> subprocess.CompletedProcess:
    """A ``factflow`` subprocess over ``minio://bucket``, with no ``FACTFLOW_`` setting of the user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
    env.update(s3_server.env(), FACTFLOW_STORAGE_URI=f"minio://{bucket}")
    done = subprocess.run([sys.executable, "-m", "factflow_storage", *args], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, (args, done.stderr.decode())
    return done
