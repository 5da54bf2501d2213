"""``minio://BUCKET[/prefix]`` (alias ``s3://``): objects in an S3 bucket, through minio-py.

Where it differs from the contract in ``protocol.py``:

- The metadata blob lives in the object's user metadata, or in a companion record when it
  is larger than S3's 2 KiB (``s3_metadata``). Deleting an object deletes its companions.
- Writes of one key are linearizable (S3's last PUT or completion wins, whole), and the
  companion record an object names is never deleted: a write removes only records that a
  fresh HEAD shows are not the current one AND that are older than ``COMPANION_GRACE``
  (a concurrent write still uploading holds a newer record the object will point at).
  A killed write leaves at most an unreferenced record or an incomplete multipart upload;
  ``fsck`` removes both once they are older than its grace period.
- A URI prefix (``minio://bucket/team-a``) is prepended to every object and record name,
  and counts toward S3's 1024-byte limit on names.
- A missing bucket is an error (BucketMissing) unless ``create_bucket`` is set; then it
  reads as empty storage and the first write creates it.
- An unreachable endpoint fails within seconds: one retry and short timeouts
  (``s3_errors``) instead of minio-py's five retries of five minutes each.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, cast

from minio import Minio
from minio.error import S3Error
from minio.helpers import check_bucket_name

from factflow_storage.errors import (BadCredentials, BucketMissing, ConfigError, Conflict, InvalidKey, InvalidRange,
                                     NotFound, NotSupported, PreconditionFailed, StorageError)
from factflow_storage.faults import fault
from factflow_storage.keys import MAX_KEY_BYTES, RESERVED_PREFIX, validate_key, validate_prefix
from factflow_storage.metadata import build_metadata, check_user_metadata, guess_content_type, provenance
from factflow_storage.protocol import (BaseProvider, ObjectInfo, ObjectStream, PrefixInfo, WriteCondition, check_range,
                                       object_etag, record_create_only)
from factflow_storage.providers import s3_client
from factflow_storage.providers import s3_metadata as meta
from factflow_storage.providers.s3_conditional import ConditionalWrites
from factflow_storage.providers.s3_errors import TRANSLATED, ErrorContext
from factflow_storage.providers.s3_get import KeptAliveGets
from factflow_storage.providers.s3_journal import journal_hook
from factflow_storage.providers.s3_listing import AFTER_RECORDS, Listed, list_entries, listable, listed_info
from factflow_storage.providers.s3_transfer import (PART_SIZE, SINGLE_PUT_LIMIT, Body, EmptyBody, Uploader, file_sha256,
                                                    http_client, read_head, split_endpoint)
from factflow_storage.storage_uri import StorageURI

DEFAULT_REGION = "us-east-1"
_COMPANION_RETRIES = 20
# Longer than any write takes between storing its companion record and its object
# becoming visible (one PUT of at most SINGLE_PUT_LIMIT, or one completion).
COMPANION_GRACE = 15 * 60.0
# Where tests kill a writer (FACTFLOW_FAULT), in write order; multipart points come from s3_transfer.
FAULT_POINTS = ("companion-stored", "object-stored", "upload-created", "parts-sent", "upload-completed",
                "companions-dropped")


class MinioProvider(BaseProvider):
    def __init__(self, uri: StorageURI, *, endpoint: str | None = None, access_key: str | None = None,
                 secret_key: str | None = None, secure: bool | None = None, region: str | None = None,
                 create_bucket: bool = False):
        if not endpoint:
            raise ConfigError("no S3 endpoint: set FACTFLOW_MINIO_ENDPOINT (host:port) for minio:// storage")
        s3_client.check_compatible()
        host, secure = split_endpoint(endpoint, secure)
        try:
            check_bucket_name(bucket_name=uri.location)
        except ValueError as err:
            raise ConfigError(f"invalid bucket name {uri.location!r} in storage URI: {err}") from None
        self.uri = uri.raw or f"{uri.scheme}://{uri.location}/{uri.prefix}"
        self.bucket = uri.location
        self.prefix = uri.prefix
        self.create_bucket = bool(create_bucket)
        self.endpoint = host
        self.region = region or DEFAULT_REGION
        self._errors = ErrorContext(host, self.bucket, access_key)
        self._http = http_client()
        self._client = Minio(endpoint=host, access_key=access_key or None, secret_key=secret_key or None,
                             secure=secure, region=self.region, http_client=self._http)
        self._uploader = Uploader(self._client, self.bucket, self._call)
        self._conditional = ConditionalWrites(self._client, self.bucket, self._record_name, self._errors)
        self._bucket_seen = False
        # Whole-object reads over plain HTTP skip minio-py's per-request work (``s3_get``).
        self._gets = KeptAliveGets(host, self.bucket, access_key, secret_key, self.region) \
            if access_key and secret_key and not secure else None
        # S3 servers cannot push changes, so watchers poll a journal of writes: kept here,
        # by every writer, not by whoever opened the provider.
        self.add_write_hook(journal_hook(self))

    # -- names and errors ----------------------------------------------------

    def _name(self, key: str) -> str:
        name = self.prefix + validate_key(key)
        if len(name.encode("utf-8")) > MAX_KEY_BYTES:
            raise InvalidKey(f"invalid key {key!r}: with the storage prefix {self.prefix!r} it is longer "
                             f"than {MAX_KEY_BYTES} bytes, the S3 limit")
        if not name.strip():
            # S3 takes it, but the minio client refuses such a name with a bare ValueError.
            raise InvalidKey(f"invalid key {key!r}: a key of white space only cannot be used on S3")
        return name

    def check_keys(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._name(key)

    def _record_name(self, name: str) -> str:
        validate_prefix(name)
        return self.prefix + RESERVED_PREFIX + name

    def _call(self, what: str, func, /, **kwargs):
        """Run one client call; every failure comes out as the project's error."""
        try:
            return func(**kwargs)
        except TRANSLATED as err:
            raise self._errors.translate(err, what) from err

    def _bucket_is_missing(self, err: StorageError) -> bool:
        """After a NoSuchBucket: True if that means empty storage (created on first write)."""
        return isinstance(err, BucketMissing) and self.create_bucket

    def _diagnose_head(self, err: S3Error) -> None:
        """HEAD errors have no body: find out whether a 403 or 404 hides a better answer."""
        if err.code == "AccessDenied":
            # A GET carries the real code: bad credentials surface here as such; any
            # other refusal leaves the object's own AccessDenied to be reported.
            try:
                self._probe()
            except BadCredentials:
                raise
            except StorageError:
                pass
        elif err.code == "NoSuchKey" and not self._bucket_seen:
            if self._call("bucket check", self._client.bucket_exists, bucket_name=self.bucket):
                self._bucket_seen = True
            elif not self.create_bucket:
                raise self._errors.bucket_missing() from err

    def _probe(self) -> None:
        """One GET listing: errors come with their real code (a HEAD's do not)."""
        for _ in self._listing(self.prefix + RESERVED_PREFIX + "probe/", None):
            break

    def check(self) -> None:
        self._probe()

    # -- writes --------------------------------------------------------------

    def write(self, key: str, data: bytes | BinaryIO, metadata: Mapping[str, Any] | None = None,
              *, content_type: str | None = None, condition: WriteCondition | None = None) -> dict[str, Any]:
        name = self._name(key)
        user_metadata = check_user_metadata(metadata)
        content_type = content_type or user_metadata.get("content_type") or None
        known_sha256 = file_sha256(data)
        head, rest = read_head(data)
        pinned = None
        if condition is not None:
            pinned = self._with_bucket(lambda: self._conditional.pin(
                key, self._current_tags(key, name), condition, multipart=rest is not None,
                single_put_limit=f"{PART_SIZE // 2**20} MiB streamed, {SINGLE_PUT_LIMIT // 2**20} MiB in memory"),
                key)
        try:
            if rest is None:
                blob = self._write_small(key, name, head, user_metadata, content_type, pinned)
            else:
                blob = self._write_large(key, name, head, rest, user_metadata, content_type, known_sha256, pinned)
        except PreconditionFailed as err:
            if err.etag is not None:
                raise
            # Another write came between the HEAD and this one: S3 refused it.
            current = self._current_tags(key, name)
            raise PreconditionFailed(f"{key!r} was changed by another write: its ETag is now {current[0]}"
                                     if current else f"{key!r} was deleted by another write",
                                     f'"{current[0]}"' if current else None) from err
        self.after_write(key)
        return blob

    def _current_tags(self, key: str, name: str) -> tuple[str, str | None] | None:
        """(our ETag, S3's ETag) of the object now; None when there is none."""
        try:
            info, blob = self._head(key, name)
        except NotFound:
            return None
        except BucketMissing:
            if self.create_bucket:
                return None
            raise
        return object_etag(info, blob), info.etag

    def _write_small(self, key: str, name: str, data: bytes, user_metadata: dict[str, Any],
                     content_type: str | None, pinned: dict[str, str] | None = None) -> dict[str, Any]:
        blob = build_metadata(key, user_metadata, content_type=content_type, size=len(data),
                              sha256_hex=hashlib.sha256(data).hexdigest())
        headers, spilled = meta.object_headers(blob, hashlib.md5(data).hexdigest())
        write_id = None
        if spilled is not None:
            write_id = meta.new_write_id()
            self._put_companion(key, write_id, spilled)
            fault("companion-stored")
            headers[meta.RECORD_HEADER] = meta.record_pointer(key, write_id)
        try:
            self._with_bucket(lambda: self._uploader.put(name, data, blob["content_type"], headers, pinned), key)
        except PreconditionFailed:
            if write_id:
                self._quietly(self.delete_record, meta.companion_name(key, write_id))
            raise
        fault("object-stored")
        if write_id:
            self._drop_companions(key, name)
            fault("companions-dropped")
        return blob

    def _write_large(self, key: str, name: str, head: bytes, rest: BinaryIO, user_metadata: dict[str, Any],
                     content_type: str | None, known_sha256: str | None = None,
                     pinned: dict[str, str] | None = None) -> dict[str, Any]:
        write_id = meta.new_write_id()
        stored_type = content_type or guess_content_type(key)
        known = {**provenance(key), **user_metadata, "content_type": stored_type}
        if known_sha256 is not None:
            # Headers are fixed when the upload starts: only a file hashed before has one.
            known["checksum"] = f"sha256:{known_sha256}"
        result: dict[str, Any] = {}

        def before_complete(size: int, sha256_hex: str) -> None:
            if known_sha256 is not None and sha256_hex != known_sha256:
                # The header would describe other bytes than the object's.
                raise Conflict(f"{key!r} changed while it was uploaded: write it again")
            # The object becomes visible at completion; its metadata must already exist.
            blob = build_metadata(key, user_metadata, content_type=stored_type, size=size, sha256_hex=sha256_hex)
            self._put_companion(key, write_id, meta.encode_blob(blob))
            fault("companion-stored")
            result["blob"] = blob

        try:
            self._with_bucket(lambda: self._uploader.multipart(name, head, rest, stored_type,
                                                               {**meta.readable_headers(known),
                                                                meta.RECORD_HEADER: meta.record_pointer(key, write_id)},
                                                               before_complete, pinned), key)
        except BaseException:
            if "blob" in result:
                self._quietly(self.delete_record, meta.companion_name(key, write_id))
            raise
        fault("upload-completed")
        self._drop_companions(key, name)
        fault("companions-dropped")
        return result["blob"]

    def _with_bucket(self, action, key: str):
        try:
            return action()
        except StorageError as err:
            if not self._bucket_is_missing(err):
                raise
        self._make_bucket()
        return action()

    def _make_bucket(self) -> None:
        try:
            self._client.make_bucket(bucket_name=self.bucket)
        except S3Error as err:
            if err.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._errors.translate(err, f"bucket {self.bucket!r}") from err
        except TRANSLATED as err:
            raise self._errors.translate(err, f"bucket {self.bucket!r}") from err
        self._bucket_seen = True

    def _put_companion(self, key: str, write_id: str, encoded: bytes) -> None:
        name = self._record_name(meta.companion_name(key, write_id))
        self._with_bucket(lambda: self._uploader.put(name, encoded, "application/json", {}), key)

    def _drop_companions(self, key: str, name: str, *, grace: float = COMPANION_GRACE) -> int:
        """Delete companion records no version of the object can need any more: not the one
        the object names now, and older than ``grace`` (see the module docstring)."""
        current = self._current_write_id(key, name)
        horizon = meta.write_id_at(time.time() - grace)
        dropped = 0
        for record in list(self.list_records(meta.companion_dir(key))):
            write_id = meta.write_id_of(record)
            if write_id != current and write_id < horizon:
                self._quietly(self.delete_record, record)
                dropped += 1
        return dropped

    def _current_write_id(self, key: str, name: str) -> str | None:
        """The write id of the companion record the object names now (None: none of its own)."""
        try:
            found = self._client.stat_object(bucket_name=self.bucket, object_name=name)
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchBucket"):
                return None
            self._diagnose_head(err)
            raise self._errors.translate(err, f"object {name!r}") from err
        except TRANSLATED as err:
            raise self._errors.translate(err, f"object {name!r}") from err
        pointer = (found.metadata or {}).get(meta.RECORD_HEADER)
        return meta.write_id_of(pointer) if pointer and meta.own_record(key, pointer) else None

    def delete(self, key: str) -> None:
        name = self._name(key)
        current = self._current_write_id(key, name)
        try:
            self._call(f"object {key!r}", self._client.remove_object, bucket_name=self.bucket, object_name=name)
        except StorageError as err:
            if self._bucket_is_missing(err):
                return
            raise
        if current:
            self._quietly(self.delete_record, meta.companion_name(key, current))
        self._drop_companions(key, name)

    def delete_many(self, keys: Sequence[str]) -> None:
        """Companion records first (one scan of ``metadata/`` per call, matched by the
        hash of each key), then the objects by multi-object delete, 1,000 a request: an
        interrupted call leaves no companion whose object is gone."""
        if not keys:
            return
        wanted = {meta.companion_dir(key) for key in keys}
        self.delete_records([record for record in self.list_records(meta.COMPANION_DIR)
                             if record[:record.rfind("/") + 1] in wanted])
        self._remove_names([self._name(key) for key in keys])

    def purge_prefix(self, prefix: str) -> int:
        """Remove every name under ``prefix``, those the listing hides too (``//``, ``.``
        segments, names ending in ``.meta.json``: other tools write them); how many."""
        validate_prefix(prefix)
        removed = 0
        while names := [found.name for found in itertools.islice(self._listing(self.prefix + prefix, None), 1000)]:
            self._remove_names(names)
            removed += len(names)
        return removed

    def delete_records(self, names: Iterable[str]) -> None:
        """One multi-object delete per thousand names."""
        self._remove_names([self._record_name(name) for name in names])

    def _remove_names(self, names: Sequence[str]) -> None:
        from minio.deleteobjects import DeleteObject

        if not names:
            return
        try:
            # The answers come lazily, one request per 1,000 names: drain them inside _call.
            failed = self._call("multi-object delete", lambda **kwargs: list(self._client.remove_objects(**kwargs)),
                                bucket_name=self.bucket, delete_object_list=(DeleteObject(name) for name in names))
        except StorageError as err:
            if self._bucket_is_missing(err):
                return
            raise
        failed = [error for error in failed if error.code != "NoSuchKey"]
        if failed:
            raise StorageError(f"could not delete {len(failed)} objects, first {failed[0].name!r}: "
                               f"{failed[0].code} {failed[0].message}")

    # -- reads ---------------------------------------------------------------

    def open(self, key: str, *, start: int = 0, length: int | None = None) -> ObjectStream:
        name = self._name(key)
        check_range(key, start + 1, start, length)  # negative values only: the size comes with the answer
        if length == 0:
            info, blob = self._head(key, name)
            check_range(key, info.size, start, length)
            return ObjectStream(info, blob, EmptyBody(), start, 0)
        if start == 0 and length is None and self._gets is not None:
            fast = self._gets.open(key, name, self._blob)
            if fast is not None:
                return fast
        for _ in range(_COMPANION_RETRIES):
            try:
                response = self._call(f"object {key!r}", self._client.get_object, bucket_name=self.bucket,
                                      object_name=name, offset=start, length=length or 0)
            except InvalidRange:
                if start == 0:  # S3 refuses any range on an empty object
                    info, blob = self._head(key, name)
                    if info.size == 0:
                        return ObjectStream(info, blob, EmptyBody(), 0, 0)
                raise InvalidRange(f"range starts at {start}, past the end of {key!r}") from None
            except StorageError as err:
                raise self._missing(err, key) from err.__cause__
            headers = response.headers
            info = meta.response_info(key, headers, meta.total_size(headers))
            stored = self._blob(key, headers, info)
            if stored is not None:
                remaining = info.size - start
                return ObjectStream(info, stored, cast(BinaryIO, Body(response, self._errors, f"object {key!r}")), start,
                                    remaining if length is None else min(length, remaining))
            response.close()
            response.release_conn()
        raise StorageError(f"the metadata record of {key!r} is missing")

    def _missing(self, err: StorageError, key: str) -> StorageError:
        if self._bucket_is_missing(err):
            return NotFound(f"no object {key!r}")
        if isinstance(err, NotFound):
            return NotFound(f"no object {key!r}")
        return err

    def _head(self, key: str, name: str) -> tuple[ObjectInfo, dict[str, Any]]:
        for _ in range(_COMPANION_RETRIES):
            try:
                found = self._client.stat_object(bucket_name=self.bucket, object_name=name)
            except S3Error as err:
                self._diagnose_head(err)
                raise self._missing(self._errors.translate(err, f"object {key!r}"), key) from err
            except TRANSLATED as err:
                raise self._errors.translate(err, f"object {key!r}") from err
            self._bucket_seen = True
            info = meta.response_info(key, found.metadata, found.size or 0)
            blob = self._blob(key, found.metadata, info)
            if blob is not None:
                return info, blob
        raise StorageError(f"the metadata record of {key!r} is missing")

    def _blob(self, key: str, headers, info: ObjectInfo) -> dict[str, Any] | None:
        """The object's blob; None when its companion is gone (the object was just replaced)."""
        inline = headers.get(meta.BLOB_HEADER)
        if inline is not None:
            blob = meta.decode_inline(inline)
            if blob is not None:
                return meta.as_stored(key, blob, info, headers)
        write_id = headers.get(meta.RECORD_HEADER)
        if write_id:
            raw = self.get_record(meta.companion_name(key, write_id))
            if raw is None and meta.own_record(key, write_id):
                time.sleep(0.05)
                return None
            blob = meta.decode_record(raw) if raw is not None else None
            if blob is not None:
                return meta.as_stored(key, blob, info, headers)
        return meta.foreign_blob(key, info.size, info.last_modified, headers, info.etag)

    def stat(self, key: str) -> ObjectInfo:
        return self._head(key, self._name(key))[0]

    def metadata(self, key: str) -> dict[str, Any]:
        return self._head(key, self._name(key))[1]

    # -- listings ------------------------------------------------------------

    def list(self, prefix: str = "", *, start_after: str | None = None,
             limit: int | None = None) -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        if limit is not None and limit <= 0:
            return
        after = self.prefix + start_after if start_after else None
        skip_to = self.prefix + AFTER_RECORDS
        reserved = self.prefix + RESERVED_PREFIX
        count = 0
        while True:
            jumped = False
            for found in self._listing(self.prefix + prefix, after):
                name = found.name
                if name.startswith(reserved):
                    if after is None or after.encode() < skip_to.encode():
                        after, jumped = skip_to, True
                        break
                    continue
                key = name[len(self.prefix):]
                if not listable(key):
                    continue
                yield listed_info(key, found)
                count += 1
                if limit is not None and count >= limit:
                    return
            if not jumped:
                return

    def _listing(self, prefix: str, start_after: str | None, *, delimiter: str | None = None,
                 first_page: int | None = None) -> Iterator[Listed]:
        try:
            yield from list_entries(self._client, self.bucket, prefix, start_after=start_after, delimiter=delimiter,
                                    first_page=first_page)
        except TRANSLATED as err:
            translated = self._errors.translate(err, "listing")
            if self._bucket_is_missing(translated):
                return
            raise translated from err
        self._bucket_seen = True

    def browse(self, prefix: str = "", *, start_after: str | None = None
               ) -> Iterator[ObjectInfo | PrefixInfo]:
        validate_prefix(prefix)
        after = start_after.encode() if start_after else None
        for found in self._listing(self.prefix + prefix, self.prefix + start_after if start_after else None,
                                   delimiter="/"):
            name = found.name[len(self.prefix):]
            # S3 still rolls keys after start_after into a prefix that sorts before it.
            if after is not None and name.encode() <= after:
                continue
            if found.is_dir:
                if name != RESERVED_PREFIX and listable(name, prefix=True):
                    yield PrefixInfo(name)
            elif listable(name):
                yield listed_info(name, found)

    def fsck(self, prefix: str = "", *, repair: bool = False, grace: float = 3600.0) -> Iterator[Any]:
        """Findings under ``prefix`` (see ``factflow_storage.fsck``), repaired on request."""
        from factflow_storage.providers import s3_fsck

        validate_prefix(prefix)
        return s3_fsck.run(self, prefix, repair=repair, grace=grace)

    # -- internal records ----------------------------------------------------

    def put_record(self, name: str, data: bytes | BinaryIO, *, condition: WriteCondition | None = None) -> None:
        object_name = self._record_name(name)
        create = record_create_only(name, condition)
        head, rest = read_head(data)
        if create:
            if rest is not None or not self._with_bucket(self._conditional.support, name).put:
                raise NotSupported(f"record {name!r}: the S3 server at {self._errors.endpoint} cannot create "
                                   "it conditionally (If-None-Match: * on one PutObject)")
            self._uploader.put(object_name, head, "application/octet-stream", {}, {"If-None-Match": "*"})
        elif rest is None:
            self._with_bucket(lambda: self._uploader.put(object_name, head, "application/octet-stream", {}), name)
        else:
            self._with_bucket(lambda: self._uploader.multipart(object_name, head, rest, "application/octet-stream",
                                                               {}, None), name)

    def open_record(self, name: str) -> BinaryIO:
        try:
            response = self._call(f"record {name!r}", self._client.get_object, bucket_name=self.bucket,
                                  object_name=self._record_name(name))
        except StorageError as err:
            if isinstance(err, NotFound) or self._bucket_is_missing(err):
                raise NotFound(f"no record {name!r}") from err.__cause__
            raise
        return cast(BinaryIO, Body(response, self._errors, f"record {name!r}"))

    def list_records(self, prefix: str, *, start_after: str | None = None,
                     first_page: int | None = None) -> Iterator[str]:
        base = self.prefix + RESERVED_PREFIX
        for found in self._listing(base + prefix, base + start_after if start_after else None,
                                   first_page=first_page):
            yield found.name[len(base):]

    def delete_record(self, name: str) -> None:
        try:
            self._call(f"record {name!r}", self._client.remove_object, bucket_name=self.bucket,
                       object_name=self._record_name(name))
        except StorageError as err:
            if not self._bucket_is_missing(err):
                raise

    def _quietly(self, func, *args) -> None:
        try:
            func(*args)
        except StorageError:
            pass

    def close(self) -> None:
        if self._gets is not None:
            self._gets.close()
        self._http.clear()
