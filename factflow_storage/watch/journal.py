"""The write journal: how a watcher follows an S3 bucket that has no listen API.

AWS S3 and Ceph radosgw cannot push events to a client, and listing an execution to
find new objects costs a request per 1000 objects already there, on every poll. So
after each object write an S3 provider also puts one empty marker:

    _factflow/journal/<exec-id>/<writer-ms:013d>-<random>/<route>/<stage>/<msg-id>

Marker names sort by the writer's clock, so a poll is one ``ListObjectsV2`` with
``start-after`` set to "now minus the lookback window": it returns only the markers of
the last few seconds, whatever the size of the execution. Cost: one extra small PUT per
object written, one LIST per poll per watched execution (shared by every watcher of it),
one HEAD per new object. Markers are never listed as objects (``_factflow/``) and stay
until the execution's records are pruned.

The lookback window covers a marker's PUT still in flight when a poll passes its name,
and clock skew between writer hosts and the watcher; a marker later than that is found
by the final listing every watch makes when the execution finishes.
A key too long to fit in the marker's name goes in the marker's body instead.
"""

from __future__ import annotations

import os
import time

from factflow_storage.errors import StorageError
from factflow_storage.keys import MAX_KEY_BYTES, execution_prefix, parse_key

JOURNAL = "journal/"


def journal_prefix(execution_id: str) -> str:
    return f"{JOURNAL}{execution_id}/"


def marker_name(key: str, stamp_ms: int | None = None) -> tuple[str, bytes]:
    """The marker's record name and body for a write of ``key``."""
    parts = parse_key(key)
    assert parts is not None
    stamp = int(time.time() * 1000) if stamp_ms is None else stamp_ms
    base = f"{journal_prefix(parts.execution_id)}{stamp:013d}-{os.urandom(4).hex()}"
    relative = key[len(execution_prefix(parts.execution_id)):]
    name = f"{base}/{relative}"
    # Room for the provider's own prefix and "_factflow/": keep well inside S3's limit.
    if len(name.encode()) + 64 > MAX_KEY_BYTES:
        return base, key.encode()
    return name, b""


def note_write(provider, key: str) -> None:
    """Called by a provider after ``key`` is committed (``BaseProvider.after_write``)."""
    parts = parse_key(key)
    if parts is None or parts.route_id is None:
        return
    if provider.write_journal is None:
        from factflow_storage.watch.s3_sources import listen_supported

        try:
            provider.write_journal = not listen_supported(provider)
        except StorageError:
            pass  # undecided for now: keep the journal for this write, ask again next time
        if provider.write_journal is False:
            return
    name, body = marker_name(key)
    try:
        provider.put_record(name, body)
    except StorageError:
        # The object is stored; failing its write now would make the writer store it again.
        # Watchers still get it from the listing they make when the execution finishes.
        pass


def parse_marker(name: str, execution_id: str) -> tuple[int, str | None] | None:
    """(writer stamp, key or None when the key is in the body) of a marker record name."""
    rest = name[len(journal_prefix(execution_id)):]
    head, _, relative = rest.partition("/")
    stamp_text, dash, _ = head.partition("-")
    if not dash or not stamp_text.isdigit():
        return None
    return int(stamp_text), (execution_prefix(execution_id) + relative) if relative else None
