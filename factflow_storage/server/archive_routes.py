"""``/api/v1/content/archive``: bulk download as archive jobs (``factflow_storage.archive``).

``POST .../prepare`` answers at once with the new job; ``GET .../{job}/status`` reports
its progress; ``GET .../{job}/download`` streams the finished zip; ``DELETE .../{job}``
cancels a job still preparing, or removes a finished one. Jobs live in storage, so any
replica over the same storage answers for any job. ``POST .../stream`` takes a prepare
request and answers with the zip as it is packed, storing nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import BinaryIO
from urllib.parse import quote

import bottle

from factflow_storage.api_paths import ARCHIVE
from factflow_storage.archive.limits import ArchiveLimits
from factflow_storage.archive.service import ArchiveJobs, ttl_from_env
from factflow_storage.server.errors import MethodNotAllowed
from factflow_storage.server.http import check_raw_path, json_response, read_json_body
from factflow_storage.service import StorageService
from factflow_storage.settings import load_settings

MAX_REQUEST_BYTES = 256 * 1024 * 1024  # a request may list the keys to pack
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


def install(app: bottle.Bottle, service: StorageService) -> None:
    limits = app.config.get("factflow.archive_limits") or ArchiveLimits.from_settings(load_settings())
    jobs = ArchiveJobs(service, ttl=app.config.get("factflow.archive_ttl") or ttl_from_env(), limits=limits)

    @app.post(ARCHIVE + "/prepare")
    def prepare():
        return json_response(jobs.prepare(read_json_body(MAX_REQUEST_BYTES)))

    @app.get(ARCHIVE + "/<job_id>/status")
    def status(job_id: str):
        check_raw_path()
        return json_response(jobs.status(job_id))

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
        body = jobs.open_stream(read_json_body(MAX_REQUEST_BYTES))
        response = bottle.HTTPResponse(body=body, status=200)
        response.set_header("Content-Type", "application/zip")
        response.set_header("Content-Disposition", _disposition(body.filename))
        return response

    @app.delete(ARCHIVE + "/<job_id>")
    def delete(job_id: str):
        if job_id in ("prepare", "stream"):  # the paths of POST, not jobs
            raise MethodNotAllowed(f"{ARCHIVE}/{job_id} only takes POST", allow="POST")
        check_raw_path()
        return json_response(jobs.delete(job_id))
