"""``factflow storage get KEY``, given no options, run without click.

click's import is a quarter of this command's time on a small object, and the command is
the one scripts run most. Settings come from the environment and the config file, as they
would through the root group. Anything that fails before the first byte is written is
handed to click's path, which runs the command again and reports the failure in its own
words; a failure after that is reported here, as the root group reports it.
"""

from __future__ import annotations

import os
import sys

from factflow_storage.errors import StorageError
from factflow_storage.protocol import ObjectStream


def run_get(key: str) -> bool:
    """True when the object was written to stdout; False when click must run the command."""
    if sys.stdout.isatty():
        return False  # click's path decides whether these bytes may go to a terminal
    try:
        stream = _open(key)
    except (StorageError, OSError, ValueError):
        return False
    if stream is None:
        return False
    try:
        with stream:
            stream.copy_to(sys.stdout.buffer)
    except StorageError as err:
        sys.stderr.write(f"Error: {' '.join(str(err).split())}\n")
        sys.exit(1)
    except BrokenPipeError:
        _silence_stdout()
    except OSError as err:
        # The object was opened, so this is the output failing (a full disk, /dev/full):
        # one line, as the root group reports it.
        _silence_stdout()
        sys.stderr.write(f"Error: cannot write the output: {err.strerror or err}\n")
        sys.exit(1)
    return True


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _open(key: str) -> ObjectStream | None:
    from factflow_storage.registry import parse_storage_uri
    from factflow_storage.settings import load_settings

    settings = load_settings({"api_url": None, "storage_uri": None})
    if settings.api_url:
        return None
    uri = parse_storage_uri(settings.storage_uri)
    if uri.scheme != "file":
        from factflow_storage.providers.s3_quick import quick_open

        return quick_open(uri, settings.provider_options(), key)
    from factflow_storage.registry import open_provider
    from factflow_storage.service import StorageService

    return StorageService(open_provider(settings)).open(key)
