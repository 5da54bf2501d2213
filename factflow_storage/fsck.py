"""``fsck``: find, and on request repair, what crashed or concurrent writers can leave.

Each provider yields ``Finding`` rows while it walks the store (``provider.fsck``); this
module folds them into one report. Memory stays flat however large the store: the walk
streams, the report keeps counts, and at most ``MAX_LISTED`` findings are listed.

What a provider reports (``kind``): ``orphan_temp`` (a temp file no live writer holds),
``interrupted_write`` (a sidecar that names an object version whose rename never came),
``metadata_mismatch`` (a sidecar describing other bytes), ``damaged_metadata`` (a sidecar
that cannot be read as a blob), ``missing_metadata`` (an object without a sidecar),
``orphan_sidecar``, ``unreferenced_record`` (an S3 companion record no object names),
``unindexed_lineage`` (an object whose lineage names another execution without the index
entry a factflow write makes: a copy by another tool; ``lineage_index.check_index``),
``unlisted_entry`` (see ``UNLISTED``), ``missing_record`` (an S3 object naming a record
that is gone) and ``incomplete_upload`` (an S3 multipart upload nobody completes); for the
whole store, the execution index's ``unindexed_execution``, ``stale_index_entry`` and
``index_not_built`` (``factflow_storage.execution_index_check``); with ``--verify``,
``changed_bytes`` and ``restored_bytes`` (see ``verify``). ``foreign_object`` (an S3 object another tool
wrote, read with computed metadata) is counted for information, never a problem. Only things older than the grace period are
touched, and file changes are made under the same lock writers take, so fsck is safe to
run beside live writers.
"""

from __future__ import annotations

from collections import Counter
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from factflow_storage.errors import StorageError
from factflow_storage.metadata import QUARANTINED

DEFAULT_GRACE = 3600.0
# Longer means the same as this, "nothing is old enough" (ten years); capped so that the
# horizon stays a time the clocks and S3's write ids can express.
MAX_GRACE = 10 * 365 * 86400.0
FOREIGN_OBJECT = "foreign_object"
# A name no listing shows (a link, a FIFO; on S3 a key with '//', a '.' segment or a
# sidecar suffix): only ``execution delete`` removes it, with the rest of its execution.
UNLISTED = "unlisted_entry"
# Counted and listed, but not problems: they need no repair and do not fail the run.
INFORMATIONAL = frozenset({FOREIGN_OBJECT})
MAX_LISTED = 1000


CHANGED_BYTES = "changed_bytes"
RESTORED_BYTES = "restored_bytes"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Finding:
    kind: str
    path: str
    detail: str
    repaired: bool = False
    bytes_reclaimed: int = 0


def report(findings: Iterable[Finding], *, prefix: str, repair: bool, grace: float) -> dict[str, Any]:
    found: Counter[str] = Counter()
    repaired: Counter[str] = Counter()
    listed: list[dict[str, Any]] = []
    reclaimed = 0
    for finding in findings:
        found[finding.kind] += 1
        if finding.repaired:
            repaired[finding.kind] += 1
            reclaimed += finding.bytes_reclaimed
        if len(listed) < MAX_LISTED:
            listed.append(asdict(finding))
    unrepaired = sum(count for kind, count in found.items() if kind not in INFORMATIONAL) - sum(repaired.values())
    return {"prefix": prefix, "repair": repair, "grace_seconds": grace, "found": dict(sorted(found.items())),
            "repaired": dict(sorted(repaired.items())), "unrepaired": unrepaired,
            "bytes_reclaimed": reclaimed, "findings": listed, "findings_truncated": sum(found.values()) > len(listed)}


def verify(provider, prefix: str, *, repair: bool = False, accept: bool = False) -> Iterator[Finding]:
    """``--verify``: read every object under ``prefix`` and check its bytes against the
    checksum its metadata states (as ``restic check --read-data``), one chunk in memory
    at a time. Catches bytes another tool changed in place with the size and times kept,
    which no stat can tell. A mismatch is never blessed silently: ``repair`` quarantines
    the object (reads refuse it), and only ``accept`` makes its new sha256 the checksum,
    the old one kept as ``stale_checksum``; a quarantined object whose bytes match again
    (restored) is released by either (``fs_quarantine``; a provider without
    ``settle_changed`` only reports)."""
    open_version = getattr(provider, "open_version", None)
    settle = getattr(provider, "settle_changed", None) if repair or accept else None
    for info in provider.list(prefix):
        try:
            stated = provider.metadata(info.key).get("checksum")
            if not isinstance(stated, str) or not stated.startswith("sha256:"):
                continue  # no checksum claimed (already stale, or a foreign object)
            digest = hashlib.sha256()
            stream, version = open_version(info.key) if open_version else (provider.open(info.key), None)
            with stream:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
            found, blob = f"sha256:{digest.hexdigest()}", stream.metadata
            stated = blob.get("checksum")  # of the very version read
            if not isinstance(stated, str) or (found == stated and QUARANTINED not in blob):
                continue
            done = bool(settle and settle(info.key, inode=version, stated=stated, found=found, accept=accept))
        except StorageError:
            continue  # gone meanwhile, or unreadable: the provider's own pass reports that
        yield _finding(info.key, stated, found, blob, done=done, repair=repair, accept=accept)


def _finding(key: str, stated: str, found: str, blob: dict[str, Any], *, done: bool, repair: bool,
             accept: bool) -> Finding:
    if found == stated:
        return Finding(RESTORED_BYTES, key, "released from quarantine: its bytes match its checksum again" if done
                       else "quarantined, but its bytes match its checksum again: --repair releases it", done)
    if done and accept:
        detail = f"accepted: its checksum is now {found}, the old {stated} kept as stale_checksum"
    elif done:
        detail = (f"quarantined: the bytes hash to {found}, not to the checksum {stated} the metadata "
                  f"states; reads refuse it until 'fsck --verify --accept-changed {key}' keeps them")
    else:
        detail = (f"the bytes are not those the metadata's checksum {stated} describes: changed in place "
                  "by another tool, or damaged")
        if QUARANTINED in blob:
            detail += f" (quarantined; 'fsck --verify --accept-changed {key}' keeps the new bytes)"
        elif repair:
            detail += " (this store cannot quarantine an object)"
    return Finding(CHANGED_BYTES, key, detail, done)
