"""Where library logs go when the CLI runs: stderr, as ``factflow: message``.

Library modules log through ``logging`` and never print. By default a user sees
warnings (a watch reconnecting, a source failing); ``-v`` adds what the tool is doing
(retries, resumed streams), ``-vv`` or ``--debug`` everything, with the time, the module
and the HTTP traffic of urllib3, as ``rclone -v`` and ``aws --debug`` do.
"""

from __future__ import annotations

import logging
import sys

PACKAGE = "factflow_storage"
_BRIEF = "factflow: %(message)s"
_DETAILED = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def level_for(verbose: int, debug: bool) -> int:
    if debug or verbose >= 2:
        return logging.DEBUG
    return logging.INFO if verbose == 1 else logging.WARNING


def setup_logging(verbose: int = 0, debug: bool = False) -> None:
    """Send the package's logs (and, with ``--debug``, urllib3's) to stderr."""
    level = level_for(verbose, debug)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_DETAILED if level == logging.DEBUG else _BRIEF))
    names = [PACKAGE, "urllib3"] if level == logging.DEBUG else [PACKAGE]
    for name in names:
        logger = logging.getLogger(name)
        # One handler per logger even when the CLI runs more than once in a process (tests).
        for old in [h for h in logger.handlers if getattr(h, "_factflow_cli", False)]:
            logger.removeHandler(old)
        handler._factflow_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
