"""The web console: its static files at ``/`` and ``/console/...``, and its login.

The console is a page of vanilla JS modules (``console/``, no build step) that gets all
its data from the ``/api/v1`` routes, like any other client; nothing stored is ever
templated into it. Its files are read from the package once, at start, so they are
served the same from a checkout, a wheel or ``factflow.pyz``.

``POST /api/v1/session`` exchanges the API token for the session cookie of ``session``;
``DELETE`` clears it and revokes its session on every replica (``revocations``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from importlib import resources

import bottle

from factflow_storage.api_paths import SESSION
from factflow_storage.errors import BadRequest, NotFound, Unauthorized
from factflow_storage.server.auth import PUBLIC_BODY_LIMIT, session_cookie
from factflow_storage.server.context import AppContext
from factflow_storage.server.http import JSON_TYPE, json_response, read_json_body
from factflow_storage.operations import ERROR
from factflow_storage.server.session import cookie_header, new_session, parse_session

log = logging.getLogger(__name__)

STATIC = "/console"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml",
          ".txt": "text/plain; charset=utf-8"}
# The console runs only its own files: stored content is shown as text or in <img>, and
# an injected script could neither load nor call out. Inline styles are allowed for the
# progress bar's width; blob:/data: images for previews of fetched bytes.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' blob: data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
               "frame-ancestors 'none'")
WRONG_TOKEN = "wrong token"

_HTML = {"description": "The console page", "content": {"text/html": {"schema": {"type": "string"}}}}
OPENAPI = {
    "/": {"get": {"summary": "The web console (an HTML page; all its data comes from this API)",
                  "operationId": "console", "security": [{}], "responses": {"200": _HTML, "default": ERROR}},
          "head": {"summary": "The web console's page, headers only", "operationId": "consoleHead",
                   "security": [{}], "responses": {"200": {"description": "The console page"}, "default": ERROR}}},
    STATIC + "/{name}": {"get": {
        "summary": "A static file of the console", "operationId": "consoleFile", "security": [{}],
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The file", "content": {"*/*": {"schema": {"type": "string"}}}},
                      "404": ERROR, "default": ERROR}}},
    SESSION: {
        "post": {"summary": "Exchange the API token for an HttpOnly, SameSite=Strict session cookie "
                            "(which the API accepts like the token), so the console never puts it in a URL",
                 "operationId": "login", "security": [{}],
                 "requestBody": {"required": True, "content": {JSON_TYPE: {"schema": {
                     "type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}}}},
                 "responses": {"200": {"description": "Logged in (Set-Cookie), or no token needed",
                                       "content": {JSON_TYPE: {"schema": {"type": "object"}}}},
                               "400": ERROR, "401": ERROR, "default": ERROR}},
        "delete": {"summary": "Sign out: clear the session cookie and revoke its session on every replica",
                   "operationId": "logout",
                   "responses": {"200": {"description": "Logged out",
                                         "content": {JSON_TYPE: {"schema": {"type": "object"}}}},
                                 "401": ERROR, "default": ERROR}},
    },
}


def _load_files() -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, content type, ETag) of every file of the console."""
    files: dict[str, tuple[bytes, str, str]] = {}
    folder = resources.files("factflow_storage.server") / "console"
    if not folder.is_dir():
        # An install without the package data still serves the API; only / is missing.
        log.warning("the console's files are not installed (%s): serving the API only", folder)
        return files
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            data = entry.read_bytes()
            files[entry.name] = (data, _TYPES[suffix], '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
    return files


def _file_response(files: dict[str, tuple[bytes, str, str]], name: str) -> bottle.HTTPResponse:
    if name not in files:
        raise NotFound(f"no console file {name!r}")
    data, content_type, etag = files[name]
    matched = bottle.request.environ.get("HTTP_IF_NONE_MATCH") == etag
    response = bottle.HTTPResponse(body=b"" if matched or bottle.request.method == "HEAD" else data,
                                   status=304 if matched else 200)
    response.set_header("Content-Type", content_type)
    response.set_header("ETag", etag)
    # Revalidated on every load, so a new version is never mixed with cached modules.
    response.set_header("Cache-Control", "no-cache")
    response.set_header("X-Content-Type-Options", "nosniff")
    response.set_header("Referrer-Policy", "no-referrer")
    if content_type.startswith("text/html"):
        response.set_header("Content-Security-Policy", PAGE_POLICY)
        response.set_header("X-Frame-Options", "DENY")
    return response


def install(app: bottle.Bottle, context: AppContext) -> None:
    files = _load_files()
    token, guard = context.token, context.guard

    @app.route("/", ["GET", "HEAD"])
    def index():
        return _file_response(files, "index.html")

    @app.get(STATIC + "/<name>")
    def static(name: str):
        return _file_response(files, name)

    @app.post(SESSION)
    def login():
        if bottle.request.content_type.split(";")[0].strip().lower() != JSON_TYPE:
            raise BadRequest(f"send the token as {JSON_TYPE}")
        body = read_json_body(PUBLIC_BODY_LIMIT)
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            raise BadRequest('the body must be a JSON object with a "token" string')
        if token is None:
            return json_response({"token_required": False})
        if not hmac.compare_digest(body["token"].encode(), token.encode()):
            raise Unauthorized(WRONG_TOKEN)
        response = json_response({"token_required": True})
        response.set_header("Set-Cookie", cookie_header(new_session(token.encode()), secure=_https()))
        response.set_header("Cache-Control", "no-store")
        return response

    @app.delete(SESSION)
    def logout():
        session = parse_session(session_cookie(bottle.request.environ), token.encode()) if token else None
        if session is not None and guard.revocations is not None:
            guard.revocations.revoke(*session)
        response = json_response({"logged_out": True})
        response.set_header("Set-Cookie", cookie_header("", secure=_https(), max_age=0))
        return response


def _https() -> bool:
    return bottle.request.urlparts.scheme == "https"
