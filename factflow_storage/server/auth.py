"""Who may talk to the server.

With a token, every request but ``GET /api/v1/health`` carries ``Authorization: Bearer
<token>`` (compared in constant time) or the console's session cookie (``session``), else
401; the console's page, static files and login are public too. Without one the server only binds
loopback, and it answers 403 to requests whose ``Host`` is not a loopback name: a web
page cannot then reach it through a DNS name rebound to 127.0.0.1.

``Guard.refusal`` decides from the request line and headers alone (a WSGI-style mapping),
so the same decision runs twice: in waitress, before any of the body is read
(``server.channel``), and in the app, where it is answered in the JSON error shape.
Credentials come from ``CredentialSource`` callables; a request is authenticated when
any source accepts it, so another source (a session cookie) is one more entry. Sources
run in waitress's event loop too, so they must not do I/O (compare, verify a signature).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from http.cookies import CookieError, SimpleCookie

import bottle

from factflow_storage import api_paths
from factflow_storage.errors import AccessDenied, ConfigError, StorageError, Unauthorized
from factflow_storage.server.http import exception_response
from factflow_storage.server.origin import OriginPolicy
from factflow_storage.server.revocations import Revocations
from factflow_storage.server.session import SESSION_COOKIE, parse_session

TOKEN_ENV = "FACTFLOW_API_TOKEN"
# Set on each request when a token is in force: whether it carried the right one.
AUTHENTICATED = "factflow.authenticated"
PUBLIC_ROUTES = frozenset({("GET", api_paths.HEALTH), ("GET", "/"), ("HEAD", "/"),
                           ("POST", api_paths.SESSION)})
# The most a public route reads of a body (the login's JSON is far smaller): anyone may
# send these routes one, so a longer one is refused before waitress spools any of it.
PUBLIC_BODY_LIMIT = 64 * 1024
# The console's static files: the same for everyone, and the login form is among them.
PUBLIC_PREFIXES = ("/console/",)
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})

MISSING_TOKEN = "missing bearer token: send 'Authorization: Bearer <token>'"
WRONG_TOKEN = "invalid bearer token"
FOREIGN_HOST = (f"host {{host!r}} is not a loopback name; set {TOKEN_ENV} on the server "
                "to accept requests addressed to other names")
NON_LOOPBACK_BIND = (f"refusing to bind {{host}}: it is not a loopback address, and serving "
                     f"beyond this machine requires {TOKEN_ENV} to be set")

# A source looks at the request headers: True (valid credentials), False (credentials
# sent but wrong), None (this source's credentials were not sent).
CredentialSource = Callable[[Mapping[str, str]], "bool | None"]


def is_loopback(host: str) -> bool:
    """True for loopback IPs and the usual names for them; any other name is not trusted."""
    host = host.strip().strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    if host != host.strip() or any(ch.isspace() for ch in host):
        raise ConfigError(f"invalid host {host!r}: it contains white space")
    if not token and not is_loopback(host):
        raise ConfigError(NON_LOOPBACK_BIND.format(host=host or "all addresses"))


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


def bearer_source(token: str) -> CredentialSource:
    expected = token.encode()

    def source(environ: Mapping[str, str]) -> bool | None:
        scheme, _, credentials = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        return hmac.compare_digest(credentials.strip().encode("latin-1"), expected)

    return source


def session_cookie(environ: Mapping[str, str]) -> str | None:
    """The value of the console's session cookie; "" when the Cookie header is unreadable."""
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(environ.get("HTTP_COOKIE", ""))
    except CookieError:
        return ""
    morsel = cookies.get(SESSION_COOKIE)
    return None if morsel is None else morsel.value


def session_source(token: str, is_revoked: Callable[[str], bool] = lambda session_id: False) -> CredentialSource:
    """The console's cookie (see ``session``), considered only when no bearer header is
    sent, so a wrong token is never rescued by a cookie; a signed-out session is wrong."""
    secret = token.encode()

    def source(environ: Mapping[str, str]) -> bool | None:
        if environ.get("HTTP_AUTHORIZATION"):
            return None
        value = session_cookie(environ)
        if value is None:
            return None
        session = parse_session(value, secret)
        return session is not None and not is_revoked(session[0])

    return source


class Guard:
    """The access decision for one request, from its method, path and headers."""

    def __init__(self, token: str | None, origins: OriginPolicy | None = None,
                 sources: Sequence[CredentialSource] = (), revocations: Revocations | None = None):
        self.token = token or None
        self.origins = origins or OriginPolicy()
        self.sources: list[CredentialSource] = list(sources)
        self.revocations = revocations
        if self.token:
            revoked = revocations.is_revoked if revocations is not None else (lambda session_id: False)
            self.sources[:0] = [bearer_source(self.token), session_source(self.token, revoked)]

    def authenticated(self, environ: Mapping[str, str]) -> bool | None:
        """True/False with credentials in force; None when the server needs none."""
        if not self.sources:
            return None
        answers = [source(environ) for source in self.sources]
        if any(answer is True for answer in answers):
            return True
        return False if any(answer is False for answer in answers) else None

    def refusal(self, method: str, path: str, environ: Mapping[str, str]) -> StorageError | None:
        """The error that refuses this request, or None to serve it."""
        if self.origins.is_preflight(method, environ):
            return None  # preflights carry no credentials by design; answered without effect
        if not self.token:
            host = environ.get("HTTP_HOST")
            if host and not is_loopback(_host_name(host)):
                return AccessDenied(FOREIGN_HOST.format(host=host))
        foreign = self.origins.refusal(method, environ)
        if foreign is not None:
            return foreign
        if not self.sources:
            return None
        verdict = self.authenticated(environ)
        if verdict is True or (method, path) in PUBLIC_ROUTES:
            return None
        if method in ("GET", "HEAD") and path.startswith(PUBLIC_PREFIXES):
            return None
        return Unauthorized(WRONG_TOKEN if verdict is False else MISSING_TOKEN)


    def body_limit(self, method: str, path: str, environ: Mapping[str, str]) -> int | None:
        """The bytes of body this request may send: 0 when it is refused, a small cap on a
        public route, None (the server's own limit) otherwise."""
        if self.refusal(method, path, environ) is not None:
            return 0
        if (method, path) in PUBLIC_ROUTES or path.startswith(PUBLIC_PREFIXES) or path == "/":
            return PUBLIC_BODY_LIMIT
        return None


def make_auth_hook(token: str | None, guard: Guard | None = None):
    """A ``before_request`` hook: runs before routing, so unknown paths are guarded too."""
    guard = guard or Guard(token)

    def hook() -> None:
        request = bottle.request
        if guard.revocations is not None and guard.token:
            guard.revocations.refresh_if_stale()  # here, in a worker thread, never in the event loop
        if guard.sources:
            request.environ[AUTHENTICATED] = guard.authenticated(request.environ) is True
        err = guard.refusal(request.method, request.path, request.environ)
        if err is None:
            return
        # Raised as a response: an exception here would be logged as a crash.
        response = exception_response(err)
        if isinstance(err, Unauthorized):
            response.set_header("WWW-Authenticate", 'Bearer realm="factflow"')
        raise response from None

    return hook
