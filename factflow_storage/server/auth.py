"""Who may talk to the server.

With a token, every request but ``GET /api/v1/health`` carries ``Authorization: Bearer
<token>`` (compared in constant time) or the console's session cookie (``session``), else
401; the console's page, static files and login are public too. Without one the server
only binds loopback, and it answers 403 to requests whose ``Host`` is not a loopback
name: a web page cannot then reach it through a DNS name rebound to 127.0.0.1.
"""

from __future__ import annotations

import hmac
import ipaddress

import bottle

from factflow_storage.errors import AccessDenied, ConfigError, Unauthorized
from factflow_storage.server.http import exception_response
from factflow_storage.server.session import SESSION_COOKIE, session_valid

TOKEN_ENV = "FACTFLOW_API_TOKEN"
# Set on each request when a token is in force: whether it carried the right one.
AUTHENTICATED = "factflow.authenticated"
PUBLIC_ROUTES = frozenset({("GET", "/api/v1/health"), ("GET", "/"), ("HEAD", "/"),
                           ("POST", "/api/v1/session")})
# The console's static files: the same for everyone, and the login form is among them.
PUBLIC_PREFIXES = ("/console/",)
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})

MISSING_TOKEN = "missing bearer token: send 'Authorization: Bearer <token>'"
WRONG_TOKEN = "invalid bearer token"
FOREIGN_HOST = (f"host {{host!r}} is not a loopback name; set {TOKEN_ENV} on the server "
                "to accept requests addressed to other names")
NON_LOOPBACK_BIND = (f"refusing to bind {{host}}: it is not a loopback address, and serving "
                     f"beyond this machine requires {TOKEN_ENV} to be set")


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
    if not token and not is_loopback(host):
        raise ConfigError(NON_LOOPBACK_BIND.format(host=host or "all addresses"))


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


def make_auth_hook(token: str | None):
    """A ``before_request`` hook: runs before routing, so unknown paths are guarded too."""
    expected = token.encode() if token else None

    def hook() -> None:
        try:
            check()
        except (AccessDenied, Unauthorized) as err:
            # Raised as a response: an exception here would be logged as a crash.
            response = exception_response(err)
            if isinstance(err, Unauthorized):
                response.set_header("WWW-Authenticate", 'Bearer realm="factflow"')
            raise response from None

    def check() -> None:
        request = bottle.request
        if expected is None:
            host = request.environ.get("HTTP_HOST")
            if host and not is_loopback(_host_name(host)):
                raise AccessDenied(FOREIGN_HOST.format(host=host))
            return
        scheme, _, credentials = request.environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        sent = scheme.lower() == "bearer" and bool(credentials.strip())
        valid = sent and hmac.compare_digest(credentials.strip().encode("latin-1"), expected)
        if not valid and not sent:
            # The console's cookie (see ``session``): a second source of the same credential.
            valid = session_valid(request.get_cookie(SESSION_COOKIE), expected)
        request.environ[AUTHENTICATED] = valid
        if valid or (request.method, request.path) in PUBLIC_ROUTES:
            return
        if request.method in ("GET", "HEAD") and request.path.startswith(PUBLIC_PREFIXES):
            return
        raise Unauthorized(WRONG_TOKEN if sent else MISSING_TOKEN)

    return hook
