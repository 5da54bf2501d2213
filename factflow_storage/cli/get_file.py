"""Where ``storage get`` puts bytes: a file written atomically (temp + rename, as
``aws s3 cp`` and ``mc cp`` do), with a progress bar on a terminal; or stdout, which
refuses binary bytes when it is a terminal, as curl does."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

import click

from factflow_storage.errors import BadRequest
from factflow_storage.metadata import is_json_type

# Below this, a bar would only flicker.
PROGRESS_FROM = 8 * 1024 * 1024
BINARY_TO_TERMINAL = ("{key} is binary ({kind}); writing it to a terminal may garble it. "
                      "Use --to FILE, a pipe, or --force")


def is_text_type(content_type: str | None) -> bool:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind.startswith("text/") or is_json_type(kind) or kind in (
        "application/x-ndjson", "application/xml", "application/yaml", "application/javascript")


def check_terminal(key: str, content_type: str | None, force: bool) -> None:
    if not force and sys.stdout.isatty() and not is_text_type(content_type):
        raise BadRequest(BINARY_TO_TERMINAL.format(key=key, kind=content_type or "unknown type"))


def to_stdout(stream: Any) -> None:
    out = sys.stdout.buffer
    for chunk in stream:
        out.write(chunk)
    out.flush()


def to_file(stream: Any, path: str) -> int:
    """Write the stream to ``path`` through a temp file beside it; a reader of ``path``
    sees the old file or the whole new one, never part of it. Returns the bytes written."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise BadRequest(f"{path} is a directory: give a file name")
    directory = os.path.dirname(target)
    try:
        fd, temp = tempfile.mkstemp(prefix=".factflow-", suffix=".part", dir=directory)
    except OSError as err:
        raise BadRequest(f"cannot write {path}: {err.strerror}") from None
    written = 0
    try:
        with os.fdopen(fd, "wb") as handle, _progress(stream.length, path) as bar:
            for chunk in stream:
                handle.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
            handle.flush()
            # mkstemp makes 0600; the file should get the mode any new file would.
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    return written


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, count: int) -> None:
        pass


def _progress(length: int, path: str):
    if length < PROGRESS_FROM or not sys.stderr.isatty():
        return _NoBar()
    return click.progressbar(length=length, label=os.path.basename(path), file=sys.stderr,
                             show_pos=False, show_percent=True, show_eta=True)
