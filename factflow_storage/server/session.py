"""Browser sessions for the console: the API token exchanged for a cookie.

A page cannot put an ``Authorization`` header on an ``EventSource``, an ``<img>`` or a
download link, and a token in a URL ends up in history and logs. So the console posts
the token once to ``/api/v1/session`` and gets an ``HttpOnly; SameSite=Strict`` cookie,
which the server accepts wherever it accepts the bearer token.

The cookie is not the token: it is ``<issued>.<HMAC(token, issued)>``. It keeps no
server-side state (any replica with the same token accepts it), it stops working when
the token changes, and it expires after ``SESSION_SECONDS``.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SESSION_COOKIE = "factflow_session"
SESSION_SECONDS = 12 * 3600
_PURPOSE = b"factflow console session\x00"


def _signature(secret: bytes, issued: str) -> str:
    return hmac.new(secret, _PURPOSE + issued.encode(), hashlib.sha256).hexdigest()


def new_session(secret: bytes, now: float | None = None) -> str:
    issued = str(int(time.time() if now is None else now))
    return f"{issued}.{_signature(secret, issued)}"


def session_valid(value: str | None, secret: bytes, now: float | None = None) -> bool:
    """Whether a cookie value was issued for this token and has not expired."""
    if not value:
        return False
    issued, _, signature = value.partition(".")
    if not issued.isdigit() or len(issued) > 12:
        return False
    if not hmac.compare_digest(signature.encode("latin-1", "replace"), _signature(secret, issued).encode()):
        return False
    age = (time.time() if now is None else now) - int(issued)
    return -60 <= age <= SESSION_SECONDS


def cookie_header(value: str, *, secure: bool, max_age: int = SESSION_SECONDS) -> str:
    """The ``Set-Cookie`` value; ``max_age=0`` with an empty value clears it."""
    parts = [f"{SESSION_COOKIE}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
