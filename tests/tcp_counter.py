"""A loopback TCP relay that counts the connections clients open through it, for tests
of connection reuse; it can also cut the first connections off after their request
arrives, as a server restarting or a proxy dropping an idle connection would."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit


class CountingRelay:
    def __init__(self, upstream_url: str, *, drop_first: int = 0):
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname, parts.port)
        self.drop_first = drop_first
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                drop = self.drop_first > 0
                self.drop_first -= drop
                self._open.append(client)
            if drop:
                client.recv(65536)
                client.close()
                continue
            upstream = socket.create_connection(self._upstream)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._open.append(upstream)
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()

    def cut(self) -> None:
        """Break every open connection, as a proxy timing out would."""
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._listener.close()
        for sock in self._open:
            try:
                sock.close()
            except OSError:
                pass


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
