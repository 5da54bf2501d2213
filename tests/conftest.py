"""Fixtures shared by the suite: a storage target per provider kind.

A ``StorageTarget`` says how to reach one empty storage: its URI, the provider options
and the environment a CLI subprocess needs. Provider-generic tests take ``storage`` (run
once per provider kind); the contract suite takes ``provider``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import pytest

from factflow_storage import create_storage_provider
from factflow_storage.service import StorageService


@dataclass
class StorageTarget:
    kind: str
    uri: str
    options: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)

    def open(self):
        return create_storage_provider(self.uri, self.options)

    def cli_env(self) -> dict:
        """The environment for a ``factflow`` subprocess pointed at this storage."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACTFLOW_")}
        env.update(self.env, FACTFLOW_STORAGE_URI=self.uri)
        return env


def _file_target(request, tmp_path) -> StorageTarget:
    return StorageTarget("file", f"file://{tmp_path / 'storage'}")


@pytest.fixture(scope="session")
def s3_server():
    """One real S3 server for the session (radosgw, or minio when on PATH), warmed up.

    It never skips: a server that cannot start fails every test that needs it.
    """
    sys.path.insert(0, os.path.dirname(__file__))
    import s3server

    server = s3server.start(warm_up=True)
    yield server
    server.stop()


def _s3_target(request, tmp_path) -> StorageTarget:
    # A fresh bucket, not a prefix in a shared one: a prefix would count toward the
    # 1024-byte key limit the contract tests at its edge.
    server = request.getfixturevalue("s3_server")
    return StorageTarget("s3", f"minio://{server.new_bucket()}", server.options(), server.env())


STORAGE_KINDS = {"file": _file_target, "s3": _s3_target}


@pytest.fixture(params=sorted(STORAGE_KINDS))
def storage(request, tmp_path) -> StorageTarget:
    return STORAGE_KINDS[request.param](request, tmp_path)


@pytest.fixture
def provider(storage):
    opened = storage.open()
    yield opened
    opened.close()


@pytest.fixture
def file_storage(tmp_path) -> StorageTarget:
    return StorageTarget("file", f"file://{tmp_path / 'storage'}")


@pytest.fixture
def modes(storage, tmp_path, monkeypatch):
    """Direct mode and ``--api`` mode over one storage (``cli_support.Modes``)."""
    from cli_support import both_modes  # the server stack, for the tests that take this only

    with both_modes(storage, tmp_path, monkeypatch) as opened:
        yield opened


@pytest.fixture
def demo(modes):
    """``modes`` over a storage that holds the demo execution ``cli_support.EXEC``."""
    from cli_support import EXEC

    code, _, err = modes.run(modes.direct_env, ["demo", "--execution", EXEC])
    assert code == 0, err
    return modes


@pytest.fixture
def bucket(s3_server) -> str:
    """A fresh, empty bucket on the suite's S3 server."""
    return s3_server.new_bucket()


@pytest.fixture
def s3(s3_server, bucket):
    """The S3 provider over ``bucket``."""
    provider = create_storage_provider(f"minio://{bucket}", s3_server.options())
    yield provider
    provider.close()


@pytest.fixture
def service(file_storage):
    """A ``StorageService`` over a filesystem storage (modules that test every kind define
    their own over ``storage``)."""
    with file_storage.open() as provider:
        yield StorageService(provider)
