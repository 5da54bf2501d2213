"""A waitress channel that decides on a request from its headers, before its body.

waitress reads a whole request body (spooling it to a temporary file past
``inbuf_overflow``) before the app sees the request, so a 401 for a PUT without a token
would come after gigabytes were written to disk. ``GatedChannel`` asks the server's
``Guard`` as soon as the headers are parsed; a refused request reaches the app with an
empty body (the app refuses it again, in the JSON shape), the rest of its body is
dropped as it arrives, and the connection closes after the answer.

The gate may also cap a body (the public routes: anyone can send them one). A declared
length past the cap is refused at the headers; a chunked body is cut as soon as it
passes the cap. Either way the app sees the request with an empty body and a
``Content-Length`` past the cap, and answers 413 in the JSON shape.

This uses waitress internals (``HTTPChannel.parser_class``, the parser's fields), hence
the upper bound on waitress in setup.cfg.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser

from factflow_storage.server.handoff import HandOffTask

log = logging.getLogger(__name__)

# (method, path, environ-style headers) -> the bytes of body that may be read: None for
# the server's own limit, 0 to refuse the request.
BodyGate = Callable[[str, str, dict[str, str]], "int | None"]


class GatedParser(HTTPRequestParser):
    completed: bool  # waitress sets it; declared for the type checker (waitress ships no hints)

    def __init__(self, adj: Any, gate: BodyGate, on_refuse: Callable[[], None]):
        super().__init__(adj)
        self._gate = gate
        self._on_refuse = on_refuse
        self._cap: int | None = None

    def received(self, data: bytes) -> int:
        had_headers = self.headers_finished
        consumed = super().received(data)
        if self.completed or self.error is not None or not self.headers_finished:
            return consumed
        if had_headers:
            received = len(self.body_rcv) if self.body_rcv is not None else 0
            if self._cap is not None and received > self._cap:
                log.debug("cut %s %s: its chunked body passed %d bytes", self.command, self.path, self._cap)
                self._refuse(declared=received)
                return len(data)
            return consumed
        environ = {"HTTP_" + name: value for name, value in self.headers.items()}
        self._cap = self._gate(self.command or "", self.path or "", environ)
        if self._cap == 0:
            log.debug("refused %s %s before reading its body", self.command, self.path)
            self._refuse(declared=None)
            return len(data)
        if self._cap is not None and self.content_length > self._cap:
            log.debug("refused %s %s: %d bytes declared", self.command, self.path, self.content_length)
            self._refuse(declared=self.content_length)
            return len(data)
        return consumed

    def _refuse(self, declared: int | None) -> None:
        """The app sees a request without a body (with ``Content-Length: declared``, so a
        body past the cap is answered 413); all the rest of this connection is dropped."""
        self.body_rcv = None
        self.content_length = 0
        self.chunked = False
        self.expect_continue = False
        if declared is not None:
            self.headers["CONTENT_LENGTH"] = str(declared)
        # waitress closes the connection after answering a request that asked it to.
        self.headers["CONNECTION"] = "close"
        self.completed = True
        self._on_refuse()


class GatedChannel(HTTPChannel):
    gate: BodyGate = staticmethod(lambda method, path, environ: None)  # type: ignore[assignment]
    task_class = HandOffTask

    def __init__(self, *args: Any, **kwargs: Any):
        self._dropping = False
        self.parser_class = self._parser  # type: ignore[assignment]
        super().__init__(*args, **kwargs)

    def _parser(self, adj: Any) -> GatedParser:
        return GatedParser(adj, self.gate, self._drop_rest)

    def _drop_rest(self) -> None:
        self._dropping = True

    def received(self, data: bytes) -> bool:
        if self._dropping:
            return bool(data)
        return super().received(data)


def gated_channel(gate: BodyGate) -> type[GatedChannel]:
    return type("FactflowChannel", (GatedChannel,), {"gate": staticmethod(gate)})
