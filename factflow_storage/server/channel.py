"""A waitress channel that decides on a request from its headers, before its body.

waitress reads a whole request body (spooling it to a temporary file past
``inbuf_overflow``) before the app sees the request, so a 401 for a PUT without a token
would come after gigabytes were written to disk. ``GatedChannel`` asks the server's
``Guard`` as soon as the headers are parsed; a refused request reaches the app with an
empty body (the app refuses it again, in the JSON shape), the rest of its body is
dropped as it arrives, and the connection closes after the answer.

This uses waitress internals (``HTTPChannel.parser_class``, the parser's fields), hence
the upper bound on waitress in setup.cfg.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser

log = logging.getLogger(__name__)

# (method, path, environ-style headers) -> whether the body may be read.
BodyGate = Callable[[str, str, dict[str, str]], bool]


class GatedParser(HTTPRequestParser):
    completed: bool  # waitress sets it; declared for the type checker (waitress ships no hints)

    def __init__(self, adj: Any, gate: BodyGate, on_refuse: Callable[[], None]):
        super().__init__(adj)
        self._gate = gate
        self._on_refuse = on_refuse

    def received(self, data: bytes) -> int:
        had_headers = self.headers_finished
        consumed = super().received(data)
        if had_headers or not self.headers_finished or self.completed or self.error is not None:
            return consumed
        environ = {"HTTP_" + name: value for name, value in self.headers.items()}
        if self._gate(self.command or "", self.path or "", environ):
            return consumed
        log.debug("refused %s %s before reading its body", self.command, self.path)
        # The app sees a request without a body; all the rest of this connection is dropped.
        self.body_rcv = None
        self.content_length = 0
        self.chunked = False
        self.expect_continue = False
        # waitress closes the connection after answering a request that asked it to.
        self.headers["CONNECTION"] = "close"
        self.completed = True
        self._on_refuse()
        return len(data)


class GatedChannel(HTTPChannel):
    gate: BodyGate = staticmethod(lambda method, path, environ: True)  # type: ignore[assignment]

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
