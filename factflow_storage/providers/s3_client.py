"""Every use of minio-py's private API, in one module.

The provider needs what minio-py's public calls do not offer: multipart uploads whose
completion it controls (the metadata record must exist before the object is visible),
raw signed requests (a fast listing parser, the listen API, listing incomplete uploads),
and the HTTP status of a response that carried no S3 error. minio-py 7.2 has these as
private methods; minio 8 renames and re-types them. Everything private goes through the
functions below, and ``check_compatible`` fails loudly (at provider construction and in
the test suite) on a minio-py whose private API is not the one this module was written
for. setup.cfg pins ``minio>=7.2,<8`` until this module is ported.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple, cast
from urllib.parse import unquote_plus
from xml.etree import ElementTree

from minio import Minio
from minio.error import InvalidResponseError

from factflow_storage.errors import ConfigError

# The private methods used, with the parameter names called by keyword.
_EXPECTED = {
    "_create_multipart_upload": ("bucket_name", "object_name", "headers"),
    "_upload_part": ("bucket_name", "object_name", "data", "headers", "upload_id", "part_number"),
    "_complete_multipart_upload": ("bucket_name", "object_name", "upload_id", "parts"),
    "_abort_multipart_upload": ("bucket_name", "object_name", "upload_id"),
    "_execute": ("method", "bucket_name", "object_name", "body", "headers", "query_params", "preload_content"),
    "_put_object": ("bucket_name", "object_name", "data", "headers"),
}
_checked = False


def check_compatible() -> None:
    """Raise ConfigError naming what changed when the installed minio-py is not 7.2's shape."""
    global _checked
    if _checked:
        return
    problems = []
    for name, params in _EXPECTED.items():
        method = getattr(Minio, name, None)
        if method is None:
            problems.append(f"Minio.{name} is gone")
            continue
        missing = [p for p in params if p not in inspect.signature(method).parameters]
        if missing:
            problems.append(f"Minio.{name} lost {', '.join(missing)}")
    try:
        from minio.datatypes import Part  # noqa: F401  (its presence is what is checked)
    except ImportError:
        problems.append("minio.datatypes.Part is gone")
    try:
        probe = InvalidResponseError(400, None, None)
    except TypeError:
        problems.append("InvalidResponseError takes other arguments")
    else:
        if response_status(probe) != 400 or not hasattr(probe, "_body"):
            problems.append("InvalidResponseError no longer keeps its status in _code and body in _body")
    if problems:
        import minio

        raise ConfigError(f"minio {minio.__version__} is not supported (this version needs minio>=7.2,<8): "
                          + "; ".join(problems))
    _checked = True


def create_multipart_upload(client: Minio, bucket: str, name: str, headers: dict[str, str]) -> str:
    return client._create_multipart_upload(bucket_name=bucket, object_name=name,
                                           headers=cast(Any, headers))  # minio's hint is too narrow


def upload_part(client: Minio, bucket: str, name: str, upload_id: str, number: int, data: bytes) -> str:
    return client._upload_part(bucket_name=bucket, object_name=name, data=data, headers=None,
                               upload_id=upload_id, part_number=number)


def complete_multipart_upload(client: Minio, bucket: str, name: str, upload_id: str,
                              parts: list[tuple[int, str]], headers: dict[str, str] | None = None) -> None:
    """Complete an upload; ``headers`` (If-Match, If-None-Match) make the completion
    conditional, which minio-py's own call cannot send."""
    from minio.datatypes import Part

    if not headers:
        client._complete_multipart_upload(bucket_name=bucket, object_name=name, upload_id=upload_id,
                                          parts=[Part(part_number=number, etag=etag) for number, etag in parts])
        return
    from minio.helpers import md5sum_hash

    element = ElementTree.Element("CompleteMultipartUpload")
    for number, etag in parts:
        part = ElementTree.SubElement(element, "Part")
        ElementTree.SubElement(part, "PartNumber").text = str(number)
        ElementTree.SubElement(part, "ETag").text = f'"{etag}"'
    body = ElementTree.tostring(element)
    response = client._execute(method="POST", bucket_name=bucket, object_name=name, body=body,
                               headers=cast(Any, {"Content-Type": "application/xml", "Content-MD5": md5sum_hash(body),
                                                  **headers}),
                               query_params={"uploadId": upload_id})
    # S3 may answer 200 with an error in the body once the completion has started.
    root = ElementTree.fromstring(response.data)
    if root.tag.rpartition("}")[2] == "Error":
        from minio.error import S3Error

        fields = {child.tag.rpartition("}")[2]: child.text or "" for child in root}
        raise S3Error(response, fields.get("Code", "InternalError"), fields.get("Message", ""), name,
                      fields.get("RequestId"), fields.get("HostId"), bucket_name=bucket, object_name=name)


def put_object(client: Minio, bucket: str, name: str, data: bytes, headers: dict[str, str]) -> str:
    """A PutObject with headers sent as they are (minio-py's public call turns any header
    it does not know, If-Match among them, into user metadata); returns the ETag, unquoted."""
    from minio.helpers import md5sum_hash

    result = client._put_object(bucket_name=bucket, object_name=name, data=data,
                                headers=cast(Any, {"Content-MD5": md5sum_hash(data), **headers}))
    return result.etag or ""


def abort_multipart_upload(client: Minio, bucket: str, name: str, upload_id: str) -> None:
    client._abort_multipart_upload(bucket_name=bucket, object_name=name, upload_id=upload_id)


def signed_get(client: Minio, bucket: str, query: dict[str, Any], *, stream: bool = False,
               object_name: str | None = None):
    """A signed GET on the bucket (or one object) with ``query``; the urllib3 response
    (unread when ``stream``)."""
    return client._execute(method="GET", bucket_name=bucket, object_name=object_name, query_params=query,
                           preload_content=not stream)


def response_status(err: InvalidResponseError) -> int:
    return getattr(err, "_code", None) or 0


def response_body(err: InvalidResponseError) -> str | None:
    return getattr(err, "_body", None)


class Upload(NamedTuple):
    name: str
    upload_id: str
    initiated: datetime | None


def list_incomplete_uploads(client: Minio, bucket: str, prefix: str) -> Iterator[Upload]:
    """Every incomplete multipart upload under ``prefix``, page by page (ListMultipartUploads)."""
    key_marker = upload_marker = None
    while True:
        query = {"uploads": "", "prefix": prefix, "max-uploads": "1000", "encoding-type": "url"}
        if key_marker:
            query["key-marker"] = key_marker
        if upload_marker:
            query["upload-id-marker"] = upload_marker
        root = ElementTree.fromstring(signed_get(client, bucket, query).data)
        truncated = False
        for child in root:
            tag = child.tag.rpartition("}")[2]
            if tag == "Upload":
                fields = {sub.tag.rpartition("}")[2]: sub.text or "" for sub in child}
                initiated = fields.get("Initiated")
                yield Upload(unquote_plus(fields.get("Key", "")), fields.get("UploadId", ""),
                             datetime.fromisoformat(initiated.replace("Z", "+00:00")) if initiated else None)
            elif tag == "IsTruncated":
                truncated = (child.text or "").lower() == "true"
            elif tag == "NextKeyMarker":
                key_marker = unquote_plus(child.text or "")
            elif tag == "NextUploadIdMarker":
                upload_marker = child.text
        if not truncated:
            return


def uploaded_bytes(client: Minio, bucket: str, name: str, upload_id: str) -> int:
    """The bytes an incomplete upload holds (the sum of its parts so far, first 1000 parts)."""
    root = ElementTree.fromstring(signed_get(client, bucket, {"uploadId": upload_id, "max-parts": "1000"},
                                             object_name=name).data)
    return sum(int(sub.text or 0) for part in root if part.tag.rpartition("}")[2] == "Part"
               for sub in part if sub.tag.rpartition("}")[2] == "Size")
