"""Browser sessions for the console: the API token exchanged for a cookie.

A page cannot put an ``Authorization`` header on an ``EventSource``, an ``<img>`` or a
download link, and a token in a URL ends up in history and logs. So the console posts
the token once to ``/api/v1/session`` and gets an ``HttpOnly; SameSite=Strict`` cookie,
which the server accepts wherever it accepts the bearer token.

The cookie is not the token: it is ``<issued>.<session id>.<HMAC(token, issued.id)>``.
Any replica with the same token accepts it, it stops working when the token changes,
and it expires after ``SESSION_SECONDS``. Signing out revokes its session id
(``revocations``): the one piece of server-side state, shared through storage.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

SESSION_COOKIE = "factflow_session"
SESSION_SECONDS = 12 * 3600
_PURPOSE = b"factflow console session\x00"


def _signature(secret: bytes, issued: str, session_id: str) -> str:
    return hmac.new(secret, _PURPOSE + f"{issued}.{session_id}".encode(), hashlib.sha256).hexdigest()


def new_session(secret: bytes, now: float | None = None) -> str:
    issued = str(int(time.time() if now is None else now))
    session_id = os.urandom(16).hex()
    return f"{issued}.{session_id}.{_signature(secret, issued, session_id)}"


def parse_session(value: str | None, secret: bytes, now: float | None = None) -> tuple[str, int] | None:
    """``(session id, expiry)`` of a cookie value issued for this token and not expired."""
    if not value:
        return None
    issued, _, rest = value.partition(".")
    session_id, _, signature = rest.partition(".")
    if not issued.isdigit() or len(issued) > 12 or len(session_id) != 32 \
            or any(ch not in "0123456789abcdef" for ch in session_id):
        return None
    if not hmac.compare_digest(signature.encode("latin-1", "replace"),
                               _signature(secret, issued, session_id).encode()):
        return None
    age = (time.time() if now is None else now) - int(issued)
    if not -60 <= age <= SESSION_SECONDS:
        return None
    return session_id, int(issued) + SESSION_SECONDS


def session_valid(value: str | None, secret: bytes, now: float | None = None) -> bool:
    """Whether a cookie value was issued for this token and has not expired."""
    return parse_session(value, secret, now) is not None


def cookie_header(value: str, *, secure: bool, max_age: int = SESSION_SECONDS) -> str:
    """The ``Set-Cookie`` value; ``max_age=0`` with an empty value clears it."""
    parts = [f"{SESSION_COOKIE}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
