"""Extracting an archive job's zip into an output tree while it downloads.

A member is kept only when its name is a valid key (or the sidecar of one) that the
caller asked for, and its bytes match a sha256: the one in the member's header when the
server knew it, else the manifest's. Absolute paths, ``..`` segments and links are
refused by the key rules and the central directory check; nothing is ever written but
regular files under DIR, through ``OutputTree``.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import BinaryIO

import orjson

from factflow_storage.download.tree import OutputTree, Staged
from factflow_storage.zipformat.layout import MANIFEST_NAME
from factflow_storage.zipformat.zipreader import UnsafeArchive, ZipStreamReader
from factflow_storage.errors import InvalidKey
from factflow_storage.keys import SIDECAR_SUFFIX, validate_key

MAX_SIDECAR = 16 * 1024 * 1024
MAX_MANIFEST = 1024 * 1024 * 1024
SMALL_MEMBER = 1024 * 1024
WRITERS = 8
WRITE_AHEAD = 256
WRITE_AHEAD_BYTES = 32 * 1024 * 1024
WRITE_BATCH = 1024 * 1024


@dataclass
class Extracted:
    objects: int = 0
    sidecars: int = 0
    bytes: int = 0
    paths: dict[str, str] = field(default_factory=dict)  # member name -> path written


def _member_key(name: str) -> tuple[str, bool]:
    """The key a member stands for, and whether the member is its sidecar."""
    is_sidecar = name.endswith(SIDECAR_SUFFIX)
    key = name[: -len(SIDECAR_SUFFIX)] if is_sidecar else name
    try:
        validate_key(key)
    except InvalidKey as err:
        raise UnsafeArchive(f"refusing archive member {name!r}: {str(err).rpartition(': ')[2]}") from None
    return key, is_sidecar


def _collect(body, limit: int, name: str) -> bytes:
    parts, size = [], 0
    for chunk in body:
        size += len(chunk)
        if size > limit:
            raise UnsafeArchive(f"archive member {name!r} is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _write_all(staged: Staged, chunks: list[bytes | memoryview]) -> None:
    for chunk in chunks:
        staged.write_hashed(chunk)


class _Writers:
    """Small members are written by a few threads (creating a file costs far more than
    its few bytes), in the order they finish; the reader moves on meanwhile."""

    def __init__(self, tree: OutputTree, done: Extracted, hashes: dict[str, tuple[int, str]],
                 on_object: Callable[[str, int], None]):
        self.tree, self.done, self.hashes, self.on_object = tree, done, hashes, on_object
        self._pool = ThreadPoolExecutor(WRITERS)
        self._through = ThreadPoolExecutor(1)
        self._window: deque[Future] = deque()
        self._ahead = 0

    def submit(self, name: str, key: str, data: bytes, sha256_hex: str | None, is_sidecar: bool) -> None:
        self._window.append(self._pool.submit(self._write, name, key, data, sha256_hex, is_sidecar))
        self._ahead += len(data)
        while len(self._window) > WRITE_AHEAD or self._ahead > WRITE_AHEAD_BYTES:
            self._settle(self._window.popleft())

    def _write(self, name: str, key: str, data: bytes, expected: str | None,
               is_sidecar: bool) -> tuple[str, str, int, str, bool]:
        actual = hashlib.sha256(data).hexdigest()
        if expected is not None and actual != expected:
            raise UnsafeArchive(f"archive member {name!r} does not match its sha256")
        path = self.tree.sidecar_target(key) if is_sidecar else self.tree.target(key)
        self.tree.write_bytes(path, key, data)
        return name, path, len(data), actual, is_sidecar

    def _settle(self, future: Future) -> None:
        name, path, size, actual, is_sidecar = future.result()
        self._ahead -= size
        self.done.paths[name] = path
        if is_sidecar:
            self.done.sidecars += 1
            return
        self.hashes[name] = (size, actual)
        self.done.objects += 1
        self.done.bytes += size
        self.on_object(name, size)

    def write_through(self, staged: Staged, body: Iterator[bytes | memoryview], on_bytes: Callable[[int], None]) -> None:
        """A large member: this thread hashes each chunk as it arrives, while it is in the
        cache, and one other thread writes them, in order (both outside the GIL)."""
        pending: deque[tuple[Future, int]] = deque()
        ahead = 0
        batch: list[bytes | memoryview] = []
        gathered = 0
        try:
            # A stream read with read1 gives small chunks; the writer gets them a megabyte
            # at a time, so handing work over costs little per byte.
            for chunk in body:
                staged.hash(chunk)
                batch.append(chunk)
                gathered += len(chunk)
                on_bytes(len(chunk))
                if gathered < WRITE_BATCH:
                    continue
                pending.append((self._through.submit(_write_all, staged, batch), gathered))
                ahead += gathered
                batch, gathered = [], 0
                while ahead > WRITE_AHEAD_BYTES:
                    future, size = pending.popleft()
                    future.result()
                    ahead -= size
            if batch:
                pending.append((self._through.submit(_write_all, staged, batch), gathered))
            for future, _ in pending:
                future.result()
        finally:
            wait([future for future, _ in pending])  # none may write after a failure returns

    def finish(self) -> None:
        while self._window:
            self._settle(self._window.popleft())

    def close(self) -> None:
        """Wait for every write under way: none may land after the caller returns."""
        for future in self._window:
            future.cancel()
        self._pool.shutdown(wait=True)
        self._through.shutdown(wait=True)


def extract_archive(stream: BinaryIO, tree: OutputTree, accept: Callable[[str], bool], *,
                    on_bytes: Callable[[int], None] = lambda n: None,
                    on_object: Callable[[str, int], None] = lambda key, size: None) -> Extracted:
    """Stream the zip into ``tree``; raise UnsafeArchive (keeping only verified files)."""
    reader = ZipStreamReader(stream)
    done = Extracted()
    pending: dict[str, Staged] = {}  # objects whose sha256 only the manifest gives
    hashes: dict[str, tuple[int, str]] = {}
    writers = _Writers(tree, done, hashes, on_object)
    manifest = None
    try:
        for member, body in reader.members():
            if member.name == MANIFEST_NAME:
                manifest = orjson.loads(_collect(body, MAX_MANIFEST, member.name))
                continue
            key, is_sidecar = _member_key(member.name)
            if not accept(key):
                raise UnsafeArchive(f"refusing archive member {member.name!r}: not an object this download asked for")
            if is_sidecar:
                data = _collect(body, MAX_SIDECAR, member.name)
                try:
                    blob = orjson.loads(data)
                except orjson.JSONDecodeError:
                    blob = None
                if not isinstance(blob, dict):
                    raise UnsafeArchive(f"archive member {member.name!r} is not a JSON object")
                writers.submit(member.name, key, data, None, True)
                continue
            if member.sha256_hex is not None and member.size <= SMALL_MEMBER:
                data = _collect(body, SMALL_MEMBER, member.name)
                on_bytes(len(data))
                writers.submit(member.name, key, data, member.sha256_hex, False)
                continue
            staged = tree.stage()
            try:
                writers.write_through(staged, body, on_bytes)
            except BaseException:
                staged.discard()
                raise
            hashes[key] = (staged.size, staged.sha256_hex)
            if member.sha256_hex is None:
                pending[key] = staged
                continue
            if staged.sha256_hex != member.sha256_hex:
                staged.discard()
                raise UnsafeArchive(f"archive member {member.name!r} does not match its sha256")
            path = tree.target(key)
            tree.commit(staged, path, key)
            done.paths[member.name] = path
            done.objects += 1
            done.bytes += staged.size
            on_object(key, staged.size)
        writers.finish()
        _check_central(reader, tree, done)
        _check_manifest(manifest, hashes)
        for key, staged in list(pending.items()):
            path = tree.target(key)
            tree.commit(staged, path, key)
            del pending[key]
            done.paths[key] = path
            done.objects += 1
            done.bytes += staged.size
            on_object(key, staged.size)
        return done
    finally:
        writers.close()
        for staged in pending.values():
            staged.discard()


def _check_central(reader: ZipStreamReader, tree: OutputTree, done: Extracted) -> None:
    for entry in reader.central_directory():
        problem = entry.problem()
        if problem:
            written = done.paths.pop(entry.name, None)
            if written:
                tree.remove(written)
            raise UnsafeArchive(f"refusing archive member {entry.name!r}: {problem}")


def _check_manifest(manifest: object, hashes: dict[str, tuple[int, str]]) -> None:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("objects"), list):
        raise UnsafeArchive(f"the archive has no valid manifest ({MANIFEST_NAME})")
    listed = {}
    for row in manifest["objects"]:
        if not isinstance(row, dict) or not isinstance(row.get("key"), str):
            raise UnsafeArchive("the archive's manifest has a malformed row")
        listed[row["key"]] = (row.get("size"), str(row.get("checksum") or "").removeprefix("sha256:"))
    for key, (size, sha) in hashes.items():
        if key not in listed:
            raise UnsafeArchive(f"archive member {key!r} is not in the manifest")
        if listed[key] != (size, sha):
            raise UnsafeArchive(f"archive member {key!r} does not match the manifest's size and sha256")
    missing = set(listed) - set(hashes)
    if missing:
        raise UnsafeArchive(f"the archive lacks {len(missing)} object(s) its manifest lists, "
                            f"e.g. {min(missing)!r}")
