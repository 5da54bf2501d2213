"""``file://PATH``: objects as files under a root, each with a ``<object>.meta.json`` sidecar.

Writes are linearizable per key and crash-safe: see ``fs_write`` for the protocol (a
per-key lock, and a sidecar that describes both the new inode and the one it replaces,
so a reader resolves every state a SIGKILL can leave to the old or the new version). A
reader opens the object and takes the blob whose inode is the one it opened, retrying
when a write swapped both in between; a copied tree (new inodes) is recognised by its
bytes matching the sidecar's checksum. Sidecars written before the previous-version
field existed read as they always did.

Every path is opened relative to the root with no-follow semantics (``fs_paths``): links
and special files under the root are refused, never followed or opened in a way that
blocks. Sidecars are read up to a bound (twice ``MAX_METADATA_BYTES``: new and previous).
Temp files end in ``.meta.json``, a suffix no key may have, so they are never listed;
``fsck`` removes those a killed writer left.

A filesystem cannot hold an object ``a/b`` beside an object ``a/b/c``: such a write
raises Conflict and leaves the existing object untouched.
"""

from __future__ import annotations

import builtins
import errno
import itertools
import os
import stat
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, BinaryIO

import orjson

from factflow_storage.errors import (Conflict, InvalidKey, NotFound, NotSupported, PreconditionFailed, StorageError,
                                     Unavailable)
from factflow_storage.keys import RESERVED_PREFIX, SIDECAR_SUFFIX, validate_key, validate_prefix
from factflow_storage.metadata import (QUARANTINED, HashingReader, build_metadata, check_blob_size, check_user_metadata,
                                       describe_stored, foreign_metadata)
from factflow_storage.protocol import (BaseProvider, ObjectInfo, ObjectStream, PrefixInfo, WriteCondition, check_range,
                                       object_etag, record_create_only)
from factflow_storage.providers import fs_listing, fs_paths, fs_quarantine, fs_stat, fs_write
from factflow_storage.providers.fs_paths import NotADirectory, Unsafe
from factflow_storage.providers.fs_sidecar_cache import SidecarCache
from factflow_storage.providers.fs_write import INODE_FIELD, PREVIOUS_FIELD, fault, key_lock, pick_version
from factflow_storage.storage_uri import StorageURI

RESERVED_DIR = RESERVED_PREFIX.rstrip("/")
_CONSISTENT_READ_DEADLINE = 2.0
# A reader that opened the object just before two writes completed sees a sidecar two
# versions on; past this window the bytes themselves decide (a copied tree).
_SWAP_WINDOW = 0.05
# File names are at most 255 bytes on the filesystems we run on; the sidecar adds its suffix.
MAX_SEGMENT_BYTES = 255 - len(SIDECAR_SUFFIX)
RECORD_ATTEMPTS = 5
_EUID = os.geteuid()


class FilesystemProvider(BaseProvider):
    metadata_readers = 1  # see BaseProvider
    read_slots = 4  # see BaseProvider

    def __init__(self, uri: StorageURI, *, fsync: bool = True):
        self.uri = uri.raw or f"file://{uri.location}"
        self.root = os.path.abspath(os.path.expanduser(uri.location))
        self._fsync = fsync
        self.stats = fs_stat.StatCalls()
        self.sidecars = SidecarCache(stats=self.stats)
        self.directories = fs_listing.DirectoryCache(stats=self.stats)
        self.rows = fs_listing.RowCache()

    def before_serving(self) -> None:
        self.stats.hold_gil(self.root)

    # -- paths ---------------------------------------------------------------

    def _path(self, key: str) -> str:
        validate_key(key)
        if any(len(segment.encode()) > MAX_SEGMENT_BYTES for segment in key.split("/")):
            raise InvalidKey(f"invalid key {key!r}: the filesystem provider cannot store a segment "
                             f"longer than {MAX_SEGMENT_BYTES} bytes (its sidecar name must fit too)")
        return os.path.join(self.root, key)

    def check_keys(self, keys: Iterable[str]) -> None:
        """Each key must fit a file name, and no key may be a prefix of another."""
        held = set()
        for key in keys:
            self._path(key)
            held.add(key)
        for key in held:
            segments = key.split("/")
            for depth in range(1, len(segments)):
                if (parent := "/".join(segments[:depth])) in held:
                    raise Conflict(f"cannot hold both {parent!r} and {key!r}: the filesystem cannot "
                                   "hold an object beside a prefix of the same name")

    def _split(self, key: str) -> tuple[list[str], str]:
        self._path(key)
        *parents, name = key.split("/")
        return parents, name

    def _chain(self, key: str, parents: list[str]) -> list[int]:
        """Descriptors down to a key's directory for reading; NotFound when there is none."""
        try:
            return fs_paths.open_parent_for_reading(self.root, parents)
        except (NotFound, NotADirectory):
            raise NotFound(f"no object {key!r}") from None
        except FileNotFoundError:
            raise NotFound(f"no object {key!r}") from None
        except Unsafe as err:
            raise Unsafe(f"cannot reach {key!r}: {err}") from None

    # -- writes --------------------------------------------------------------

    def write(self, key: str, data: bytes | BinaryIO, metadata: Mapping[str, Any] | None = None,
              *, content_type: str | None = None, condition: WriteCondition | None = None,
              dir_syncs: fs_write.DirSyncs | None = None) -> dict[str, Any]:
        """As the protocol says; with ``dir_syncs`` (from ``dir_syncs()``), the directory's
        fsync is owed to it instead of done here: the write is durable once it syncs."""
        try:
            blob = self._write(key, data, metadata, content_type, condition, dir_syncs)
        except StorageError:
            raise
        except OSError as err:  # a full disk, a read-only mount, lost permissions
            raise Unavailable(f"cannot write {key!r} under {self.root}: {err.strerror or err}") from err
        return blob

    def _write(self, key: str, data: bytes | BinaryIO, metadata: Mapping[str, Any] | None,
               content_type: str | None, condition: WriteCondition | None,
               dir_syncs: fs_write.DirSyncs | None) -> dict[str, Any]:
        parents, name = self._split(key)
        user_metadata = check_user_metadata(metadata)
        user_metadata.pop(INODE_FIELD, None)
        user_metadata.pop(PREVIOUS_FIELD, None)
        user_metadata.pop(QUARANTINED, None)  # new bytes are not quarantined, whatever was copied
        fds = self._make_parent(key, parents)
        parent = fds[-1]
        try:
            if fs_paths.kind_of(parent, name) == "directory":
                raise _prefix_conflict(key)
            if condition is not None:
                self._check(key, parent, name, condition)  # early, so a failing upload is not streamed
            reader = HashingReader(data)
            data_tmp: str | None
            data_tmp, data_fd = fs_write.write_temp(parent, reader.chunks(), fsync=self._fsync)
            try:
                blob = build_metadata(key, user_metadata, content_type=content_type,
                                      size=reader.size, sha256_hex=reader.sha256_hex)
                check_blob_size(key, orjson.dumps(blob))
                with key_lock(parent):
                    if condition is not None:
                        self._check(key, parent, name, condition)  # the decision: no write can intervene
                    self._publish(key, parent, name, blob, data_tmp, os.fstat(data_fd).st_ino, dir_syncs)
                    data_tmp = None
            finally:
                os.close(data_fd)
                if data_tmp:
                    fs_write.unlink_quietly(parent, data_tmp)
            return blob
        finally:
            fs_paths.close_all(fds)

    def dir_syncs(self) -> fs_write.DirSyncs:
        """A collector for a batch of writes that pay each directory's fsync once."""
        return fs_write.DirSyncs()

    def _publish(self, key: str, parent: int, name: str, blob: dict[str, Any], data_tmp: str, inode: int,
                 dir_syncs: fs_write.DirSyncs | None = None) -> None:
        """Steps 2-4 of the protocol in ``fs_write``; the key's lock is held."""
        record: dict[str, Any] = {**blob, INODE_FIELD: inode}
        previous = self._current(key, parent, name)
        if previous is not None:
            record[PREVIOUS_FIELD] = previous
        fs_write.replace_small(parent, name + SIDECAR_SUFFIX, orjson.dumps(record), fsync=self._fsync)
        fault("sidecar-renamed")
        try:
            os.replace(data_tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except (IsADirectoryError, NotADirectoryError) as err:
            fs_write.unlink_quietly(parent, name + SIDECAR_SUFFIX)
            raise _prefix_conflict(key) from err
        fault("data-renamed")
        if self._fsync and dir_syncs is not None:
            dir_syncs.owe(parent)
        elif self._fsync:
            fs_write.sync_dir(parent)
        fault("dir-synced")

    def _check(self, key: str, parent: int, name: str, condition: WriteCondition) -> None:
        failure = condition.failure(key, self._current_tag(key, parent, name))
        if failure is not None:
            raise failure

    def _current_tag(self, key: str, parent: int, name: str) -> str | None:
        """The entity tag the server shows for the object at ``key`` (None: no object)."""
        try:
            fd = fs_paths.open_regular(parent, name, f"object {key!r}")
        except NotFound:
            return None
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(fd)
            blob = self._matching_sidecar(key, parent, name, st, handle) or {}
        blob = describe_stored(key, blob, size=st.st_size)
        return object_etag(_info(key, st, blob), blob)

    def _current(self, key: str, parent: int, name: str) -> dict[str, Any] | None:
        """The blob of the object a write is about to replace, with its inode; None when
        there is none, or when it is not a regular file or its sidecar is damaged."""
        try:
            fd = fs_paths.open_regular(parent, name, f"object {key!r}")
        except (NotFound, Unsafe):
            return None
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(fd)
            try:
                blob = self._matching_sidecar(key, parent, name, st, handle)
            except StorageError:
                return None
        return None if blob is None else {**blob, INODE_FIELD: st.st_ino}

    def _make_parent(self, key: str, parents: list[str]) -> list[int]:
        try:
            os.makedirs(self.root, exist_ok=True)
            return fs_paths.open_chain(self.root, parents, create=True)
        except NotADirectory as err:
            self._check_root()
            raise Conflict(
                f"cannot write {key!r}: a parent path is already an object, and the "
                "filesystem cannot hold an object beside a prefix of the same name"
            ) from err
        except Unsafe as err:
            raise Unsafe(f"cannot write {key!r}: {err}") from None
        except (FileExistsError, NotADirectoryError) as err:
            self._check_root()
            raise Conflict(f"cannot write {key!r}: {err.strerror}") from err
        except OSError as err:
            raise Unavailable(f"cannot write under {self.root}: {err.strerror}") from err

    def delete(self, key: str) -> None:
        parents, name = self._split(key)
        try:
            fds = fs_paths.open_chain(self.root, parents)
        except (NotFound, NotADirectory, FileNotFoundError):
            return
        except Unsafe as err:
            raise Unsafe(f"cannot delete {key!r}: {err}") from None
        try:
            with key_lock(fds[-1]):
                try:
                    os.unlink(name, dir_fd=fds[-1])
                except FileNotFoundError:
                    pass  # a delete killed after this step left the sidecar: finish it
                except (IsADirectoryError, NotADirectoryError):
                    return
                except PermissionError as err:
                    if fs_paths.kind_of(fds[-1], name) == "directory":
                        return
                    raise StorageError(f"cannot delete {key!r}: {err.strerror}") from err
                fault("object-unlinked")
                fs_write.unlink_quietly(fds[-1], name + SIDECAR_SUFFIX)
            # S3 has no empty prefixes; dropping empty directories also lets a later write
            # put an object where a prefix used to be.
            fs_paths.remove_empty_dirs(parents, fds)
        finally:
            fs_paths.close_all(fds)

    # -- reads ---------------------------------------------------------------

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectStream:
        stream, _inode = self.open_version(key, start=start, length=length)
        if QUARANTINED in stream.metadata:
            stream.close()
            raise fs_quarantine.refusal(key)
        return stream

    def open_version(self, key: str, *, start: int = 0, length: int | None = None) -> tuple[ObjectStream, int]:
        """``open`` of a quarantined object too (``fsck --verify`` reads it), with the inode
        of the version opened (which ``settle_changed`` names)."""
        parents, name = self._split(key)
        fds = self._chain(key, parents)
        try:
            handle, st, blob = self._consistent(key, fds[-1], name)
        finally:
            fs_paths.close_all(fds)
        blob = describe_stored(key, blob, size=st.st_size)  # a tree copied by another tool
        info = _info(key, st, blob)
        try:
            check_range(key, info.size, start, length)
            if start:
                handle.seek(start)
        except BaseException:
            handle.close()
            raise
        remaining = info.size - start
        stream = ObjectStream(info, blob, handle, start, remaining if length is None else min(length, remaining))
        return stream, st.st_ino

    def settle_changed(self, key: str, *, inode: int, stated: str, found: str, accept: bool) -> bool:
        """Quarantine, or with ``accept`` roll forward, an object whose bytes hash to
        ``found`` rather than ``stated`` (see ``fs_quarantine``)."""
        return fs_quarantine.settle(self, key, inode=inode, stated=stated, found=found, accept=accept)

    def _consistent(self, key: str, parent: int, name: str) -> tuple[BinaryIO, os.stat_result, dict[str, Any]]:
        began = time_now = time.monotonic()
        while True:
            try:
                fd = fs_paths.open_regular(parent, name, f"object {key!r}")
            except NotFound:
                raise NotFound(f"no object {key!r}") from None
            handle = os.fdopen(fd, "rb")
            try:
                st = self.stats.of(fd)
                verify = time_now - began > _SWAP_WINDOW
                blob = self._matching_sidecar(key, parent, name, st, handle if verify else None)
                if blob is not None:
                    return handle, st, blob
            except BaseException:
                handle.close()
                raise
            handle.close()
            time_now = time.monotonic()
            if time_now - began > _CONSISTENT_READ_DEADLINE:
                raise StorageError(f"metadata of {key!r} does not describe its bytes (an interrupted "
                                   "write, or bytes changed by another tool; `factflow storage fsck --repair` "
                                   "rebuilds it)")
            time.sleep(0.001)

    def _matching_sidecar(self, key: str, parent: int, name: str, st: os.stat_result,
                          verify_with: BinaryIO | None) -> dict[str, Any] | None:
        """The sidecar blob of exactly this version of the object; None while a write is mid-swap.

        A sidecar without our inode field (written by another tool, or a downloaded tree) is
        taken as it is. A copied tree has new inodes: once a mismatch outlasts the swap
        window, the bytes themselves decide (``verify_with``).
        """
        record = self.sidecars.read(key, parent, name)
        if record is None:
            return foreign_metadata(key, st.st_size, _mtime(st))
        return pick_version(record, st, verify_with)

    def stat(self, key: str) -> ObjectInfo:
        stream, _inode = self.open_version(key)  # a quarantined object's metadata still answers
        with stream:
            return stream.info

    def metadata(self, key: str) -> dict[str, Any]:
        parents, name = self._split(key)
        fds = self._chain(key, parents)
        try:
            blob = self._looked_at(key, fds[-1], name)
        finally:
            fs_paths.close_all(fds)
        return self.full_metadata(key) if blob is None else blob

    def metadata_many(self, keys: Iterable[str]) -> Iterator[dict[str, Any]]:
        """``metadata`` of each key in turn, opening each directory once for a run of keys
        in it (a listing's keys come grouped so)."""
        opened: tuple[list[str], list[int]] | None = None
        try:
            for key in keys:
                parents, name = self._split(key)
                if opened is None or opened[0] != parents:
                    if opened is not None:
                        fs_paths.close_all(opened[1])
                        opened = None
                    opened = (parents, self._chain(key, parents))
                blob = self._looked_at(key, opened[1][-1], name)
                yield self.full_metadata(key) if blob is None else blob
        finally:
            if opened is not None:
                fs_paths.close_all(opened[1])

    def _looked_at(self, key: str, parent: int, name: str) -> dict[str, Any] | None:
        """The blob of a regular file whose sidecar names its inode, from a look at the
        object rather than an open: a listing with metadata reads many. None for anything
        else (a write mid-swap, a copied tree, a link, no sidecar), which ``full_metadata``
        settles or refuses."""
        try:
            st = self.stats.at(name, parent)
        except FileNotFoundError:
            raise NotFound(f"no object {key!r}") from None
        return self.blob_for(key, parent, name, st)

    def blob_for(self, key: str, parent: int, name: str, st: os.stat_result) -> dict[str, Any] | None:
        """``_looked_at`` of an object already stat'ed (``st``, not following links)."""
        if not stat.S_ISREG(st.st_mode) or not _readable(st, parent, name):
            return None  # an object the reader may not open has no metadata for it either
        record = self.sidecars.read(key, parent, name)
        if record is None or record.get(INODE_FIELD) is None:
            return None
        blob = pick_version(record, st, None)
        return None if blob is None else describe_stored(key, blob, size=st.st_size)

    def full_metadata(self, key: str) -> dict[str, Any]:
        stream, _inode = self.open_version(key)
        with stream:
            return stream.metadata

    # -- listings ------------------------------------------------------------

    def list_with_metadata(self, prefix: str = "", *, start_after: str | None = None,
                           keep: Callable[[str], bool] | None = None
                           ) -> Generator[tuple[ObjectInfo, dict[str, Any]], None, None]:
        """``list`` with each object's ``metadata``, in one pass (``fs_listing``); only keys
        that pass ``keep`` are read."""
        return fs_listing.walk(self, prefix, start_after, keep)

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        directory, _, name_filter = prefix.rpartition("/")
        key_prefix = f"{directory}/" if directory else ""
        if not self._reachable(directory):
            return iter(())
        walk = self._walk(os.path.join(self.root, directory), key_prefix, name_filter, start_after)
        return walk if limit is None else itertools.islice(walk, limit)

    def _reachable(self, directory: str) -> bool:
        """Whether a listing's start directory is reached without a link (the walk below
        it never enters links: it checks each entry without following)."""
        try:
            fs_paths.close_all(fs_paths.open_chain(self.root, fs_paths.segments_of(directory)))
        except (NotFound, NotADirectory, Unsafe, FileNotFoundError, NotADirectoryError):
            return False
        except OSError as err:
            if err.errno == errno.ENAMETOOLONG:  # a prefix no stored key can match
                return False
            raise Unavailable(f"cannot read {directory or self.root}: {err.strerror}") from err
        return True

    def _walk(self, directory: str, key_prefix: str, name_filter: str,
              start_after: str | None) -> Iterator[ObjectInfo]:
        # Depth-first over directories each sorted by key, with '/' ending the keys of
        # subdirectories: 'a-b' < 'a/' < 'a0', exactly S3's order. An explicit stack rather
        # than nested generators keeps the cost per object flat; memory is bounded by the
        # largest single directory, not by the number of objects.
        pending = [iter(self._level(directory, key_prefix, name_filter))]
        while pending:
            for key, entry, is_dir in pending[-1]:
                if is_dir:
                    if start_after is None or key > start_after or start_after.startswith(key):
                        pending.append(iter(self._level(entry.path, key, "")))
                        break
                    continue
                if start_after is not None:
                    if key <= start_after:
                        continue
                    start_after = None  # every later key is greater
                info = _listed(key, entry)
                if info is not None:
                    yield info
            else:
                pending.pop()

    def _level(self, directory: str, key_prefix: str, name_filter: str) -> builtins.list[tuple[str, os.DirEntry, bool]]:
        """One directory's entries as (key, entry, is_dir), in key order; keys of
        subdirectories end with '/'. Sidecars, temp files and the records directory are left out."""
        try:
            scanner = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as err:
            if err.errno == errno.ENAMETOOLONG:  # a prefix no stored key can match
                return []
            raise Unavailable(f"cannot read {directory}: {err.strerror}") from err
        rows: list[tuple[str, os.DirEntry, bool]] = []
        append = rows.append
        at_root = not key_prefix
        with scanner:
            for entry in scanner:
                name = entry.name
                if name.endswith(SIDECAR_SUFFIX) or (name_filter and not name.startswith(name_filter)):
                    continue
                if at_root and name == RESERVED_DIR:
                    continue
                if not name.isascii() and not fs_paths.is_utf8(name):
                    continue  # undecodable bytes: not a key this project could have written
                if entry.is_dir(follow_symlinks=False):
                    append((f"{key_prefix}{name}/", entry, True))
                elif entry.is_file(follow_symlinks=False):
                    append((key_prefix + name, entry, False))
        # Code point order of str is the byte order of UTF-8, which is S3's.
        rows.sort(key=_first_item)
        return rows

    def browse(self, prefix: str = "", *, start_after: str | None = None
               ) -> Iterator[ObjectInfo | PrefixInfo]:
        validate_prefix(prefix)
        directory, _, name_filter = prefix.rpartition("/")
        key_prefix = f"{directory}/" if directory else ""
        if not self._reachable(directory):
            return iter(())
        return self._browse(os.path.join(self.root, directory), key_prefix, name_filter, start_after)

    def _browse(self, directory: str, key_prefix: str, name_filter: str,
                start_after: str | None) -> Iterator[ObjectInfo | PrefixInfo]:
        for key, entry, is_dir in self._level(directory, key_prefix, name_filter):
            if start_after is not None and key <= start_after:
                continue
            if is_dir:
                # S3 has no empty prefixes: show a directory only if it holds an object.
                if _first(self._walk(entry.path, key, "", None)):
                    yield PrefixInfo(key)
            else:
                info = _listed(key, entry)
                if info is not None:
                    yield info

    def fsck(self, prefix: str = "", *, repair: bool = False, grace: float = 3600.0) -> Iterator[Any]:
        """Findings under ``prefix`` (see ``factflow_storage.fsck``), repaired on request."""
        from factflow_storage.providers import fs_fsck

        validate_prefix(prefix)
        return fs_fsck.run(self.root, RESERVED_DIR, prefix, repair=repair, grace=grace, fsync=self._fsync)

    # -- internal records ----------------------------------------------------

    def purge_prefix(self, prefix: str) -> int:
        """Remove everything under the directory ``prefix`` names, what the listing does
        not show too (links, FIFOs, sockets, directories): links are removed, never
        followed, so nothing outside the root is touched. How many entries went."""
        directory = validate_prefix(prefix).rstrip("/")
        *parents, name = directory.split("/")
        try:
            fds = fs_paths.open_chain(self.root, parents)
        except (NotFound, NotADirectory, Unsafe, FileNotFoundError):
            return 0
        try:
            return fs_paths.remove_entry(fds[-1], name)
        finally:
            fs_paths.close_all(fds)

    def put_record(self, name: str, data: bytes | BinaryIO, *, condition: WriteCondition | None = None) -> None:
        validate_prefix(name)
        create = record_create_only(name, condition)
        if create and not isinstance(data, bytes):
            raise NotSupported(f"record {name!r}: a create-only record write takes bytes")
        # A deletion removes directories it empties: one that goes between our opening it
        # and our rename takes the record with it, so the write is made again (small
        # records only: a stream, an archive, is read once).
        attempts = RECORD_ATTEMPTS if isinstance(data, bytes) else 1
        for attempt in range(attempts):
            if self._put_record_once(name, data, create) or attempt == attempts - 1:
                return

    def _put_record_once(self, name: str, data: bytes | BinaryIO, create: bool = False) -> bool:
        """Write the record; False if its directory was removed meanwhile."""
        *parents, base = [RESERVED_DIR, *name.split("/")]
        try:
            os.makedirs(self.root, exist_ok=True)
            fds = fs_paths.open_chain(self.root, parents, create=True)
        except Unsafe as err:
            raise Unsafe(f"cannot write record {name!r}: {err}") from None
        except FileNotFoundError as err:
            if isinstance(data, bytes):
                return False
            raise Unavailable(f"cannot write record {name!r} under {self.root}: {err}") from err
        except (NotADirectory, OSError) as err:
            self._check_root()
            raise Unavailable(f"cannot write record {name!r} under {self.root}: {err}") from err
        fd = fds[-1]
        try:
            tmp, tmp_fd = fs_write.write_temp(fd, HashingReader(data).chunks(), fsync=self._fsync)
            try:  # the temp file stays locked until renamed, so fsck leaves it alone
                if create:  # a link, unlike a rename, fails on an existing name: one creator wins
                    try:
                        os.link(tmp, base, src_dir_fd=fd, dst_dir_fd=fd)
                    except FileExistsError:
                        raise PreconditionFailed(f"record {name!r} already exists") from None
                    finally:
                        fs_write.unlink_quietly(fd, tmp)
                else:
                    os.replace(tmp, base, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                fs_write.unlink_quietly(fd, tmp)
                raise
            finally:
                os.close(tmp_fd)
            if self._fsync:
                fs_write.sync_dir(fd)
            return all(os.fstat(each).st_nlink > 0 for each in fds)
        finally:
            fs_paths.close_all(fds)

    def open_record(self, name: str) -> BinaryIO:
        validate_prefix(name)
        *parents, base = [RESERVED_DIR, *name.split("/")]
        try:
            fds = fs_paths.open_chain(self.root, parents)
        except (NotFound, NotADirectory, FileNotFoundError, NotADirectoryError) as err:
            raise NotFound(f"no record {name!r}") from err
        try:
            return os.fdopen(fs_paths.open_regular(fds[-1], base, f"record {name!r}"), "rb")
        except NotFound as err:
            raise NotFound(f"no record {name!r}") from err
        finally:
            fs_paths.close_all(fds)

    def list_records(self, prefix: str, *, start_after: str | None = None,
                     first_page: int | None = None) -> Iterator[str]:
        # Walked from descriptors, as objects are: a link among the records (planted to
        # make a delete reach outside the root) is refused, never listed through.
        directory, _, _ = prefix.rpartition("/")
        try:
            fds = fs_paths.open_chain(self.root, [RESERVED_DIR, *fs_paths.segments_of(directory)])
        except (NotFound, NotADirectory, FileNotFoundError, NotADirectoryError):
            return
        except Unsafe as err:
            raise Unsafe(f"cannot list records {prefix!r}: {err}") from None
        names: builtins.list[str] = []
        try:
            start = f"{directory}/" if directory else ""
            for current, _subdirs, files, _fd in os.fwalk(".", dir_fd=fds[-1]):
                rel = start + ("" if current == "." else current[2:] + "/")
                names.extend(rel + f for f in files if not f.endswith(SIDECAR_SUFFIX))
        finally:
            fs_paths.close_all(fds)
        yield from sorted(n for n in names if n.startswith(prefix) and (start_after is None or n > start_after))

    def delete_record(self, name: str) -> None:
        self._delete_record(name, prune_dirs=False)

    def delete_records(self, names: Iterable[str]) -> None:
        """Also drops directories left empty, so a deleted execution leaves no trace."""
        for name in names:
            self._delete_record(name, prune_dirs=True)

    def _delete_record(self, name: str, *, prune_dirs: bool) -> None:
        validate_prefix(name)
        segments = [RESERVED_DIR, *name.split("/")]
        try:
            fds = fs_paths.open_chain(self.root, segments[:-1])
        except (NotFound, NotADirectory, FileNotFoundError, NotADirectoryError):
            return
        except Unsafe as err:
            raise Unsafe(f"cannot delete record {name!r}: {err}") from None
        try:
            try:
                os.unlink(segments[-1], dir_fd=fds[-1])
            except OSError as err:
                if err.errno not in (errno.ENOENT, errno.EISDIR, errno.ENOTDIR):
                    raise
            if prune_dirs:
                fs_paths.remove_empty_dirs(segments[:-1], fds)
        finally:
            fs_paths.close_all(fds)

    def check(self) -> None:
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise Unavailable(f"storage root {self.root} is not a directory")

    def _check_root(self) -> None:
        """After a failed mkdir: blame the root when it cannot be a directory at all."""
        self.check()
        if not os.path.isdir(self.root):
            raise Unavailable(f"storage root {self.root} cannot be created")


def _info(key: str, st: os.stat_result, blob: Mapping[str, Any]) -> ObjectInfo:
    checksum = blob.get("checksum") or ""
    etag = checksum.partition(":")[2] or None
    return ObjectInfo(key, st.st_size, _mtime(st), etag, blob.get("content_type"))


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)


def _first(iterator: Iterator[Any]) -> bool:
    return next(iterator, None) is not None


def _first_item(row: tuple) -> Any:
    return row[0]



def _listed(key: str, entry: os.DirEntry) -> ObjectInfo | None:
    """A listing row; None when the object was deleted since its directory was read."""
    try:
        st = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None
    return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, timezone.utc))


def _readable(st: os.stat_result, parent: int, name: str) -> bool:
    """Whether this process may open the object for reading. For a file it owns the owner's
    mode bits decide (an ACL's owner entry is those bits), with no system call; else the kernel."""
    if st.st_uid == _EUID and st.st_mode & stat.S_IRUSR:
        return True
    return os.access(name, os.R_OK, dir_fd=parent, effective_ids=True, follow_symlinks=False)


def _prefix_conflict(key: str) -> Conflict:
    return Conflict(f"cannot write {key!r}: objects already exist under {key + '/'!r}, and the "
                    "filesystem cannot hold an object beside a prefix of the same name")
