"""``GET /api/v1/content/archive/{job}/download``: the finished zip of an archive job
(``factflow_storage.archive``), streamed.

The job's JSON calls (``POST .../prepare`` answers at once with the new job, ``GET
.../{job}/status`` its progress, ``DELETE .../{job}`` cancels a job still preparing or
removes a finished one) are declared operations (``operations.catalog``). Jobs live in
storage, so any replica over the same storage answers for any job. ``POST .../stream``
takes a prepare request and answers with the zip as it is packed, storing nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import BinaryIO
from urllib.parse import quote

import bottle

from factflow_storage.api_paths import ARCHIVE
from factflow_storage.server.context import AppContext
from factflow_storage.operations import errors
from factflow_storage.operations.catalog import MAX_ARCHIVE_REQUEST, PREPARE_ARCHIVE
from factflow_storage.server.http import check_raw_path, read_json_body
from factflow_storage.server.openapi_paths import ARCHIVE_PATHS

CHUNK = 1024 * 1024


class ArchiveBody:
    """The stored zip as a WSGI body, closed by the server when sent."""

    def __init__(self, stream: BinaryIO, on_close: Callable[[], None] = lambda: None):
        self._stream = stream
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self._stream.read(CHUNK):
            yield chunk

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            on_close, self._on_close = self._on_close, lambda: None
            on_close()


def _disposition(filename: str) -> str:
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def install(app: bottle.Bottle, context: AppContext) -> None:
    jobs = context.archive_jobs

    @app.get(ARCHIVE + "/<job_id>/download")
    def download(job_id: str):
        check_raw_path()
        stream, record = jobs.open_download(job_id)
        jobs.download_started(job_id)
        response = bottle.HTTPResponse(body=ArchiveBody(stream, lambda: jobs.download_done(job_id)), status=200)
        response.set_header("Content-Type", "application/zip")
        response.set_header("Content-Length", str(record["file_size"]))
        response.set_header("Content-Disposition", _disposition(record["filename"]))
        return response

    @app.post(ARCHIVE + "/stream")
    def stream():
        # Chunked: the size is known only once the last member is packed.
        body = jobs.open_stream(read_json_body(MAX_ARCHIVE_REQUEST))
        response = bottle.HTTPResponse(body=body, status=200)
        response.set_header("Content-Type", "application/zip")
        response.set_header("Content-Disposition", _disposition(body.filename))
        return response


# The byte routes beside the declared job calls: the same request as prepare, the zip as
# the answer.
OPENAPI = {**ARCHIVE_PATHS, ARCHIVE + "/stream": {"post": {
    "summary": "An execution's objects as a zip, sent while it is packed (nothing is stored)",
    "description": "Takes the body of prepare; the answer is chunked and has no length. A zip the "
                   "server cannot finish is cut off before its end records: read them before trusting it.",
    "operationId": "streamArchive",
    "requestBody": PREPARE_ARCHIVE.openapi()["requestBody"],
    "responses": {"200": {"description": "The zip",
                          "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                  **errors(400, 404, 409)},
}}}
