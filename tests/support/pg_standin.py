"""A stand-in for a PostgreSQL server that stops answering: a TCP relay in front of the real one that can be
switched between forwarding and a black hole.

In the black hole it still accepts connections and takes their bytes (the kernel acknowledges them), but nothing
is passed on and nothing comes back, on new connections and on those already open: what a hung server or a
firewall dropping replies looks like to a client. Switched back, held connections carry on where they stopped and
new ones are relayed again. Use as a context manager::

    with PgStandIn(("127.0.0.1", 5432)) as standin:
        url = standin.url_for(real_url)
        ...
        standin.black_hole()
        ...
        standin.forward()
"""

from __future__ import annotations

import socket
import threading

from sqlalchemy.engine import make_url


class PgStandIn:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.accepted = 0

    def url_for(self, url: str) -> str:
        """`url` (a PostgreSQL URL of the real server) pointed at the stand-in instead."""
        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def start(self) -> PgStandIn:
        threading.Thread(target=self._accept, name="pg-standin", daemon=True).start()
        return self

    def black_hole(self) -> None:
        self._forwarding.clear()

    def forward(self) -> None:
        self._forwarding.set()

    def close(self) -> None:
        self._closed = True
        self._forwarding.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)
            self._sockets.clear()

    def __enter__(self) -> PgStandIn:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            with self._lock:
                self._sockets.append(client)
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        # A connection made during the black hole is held silent for as long as the black hole lasts.
        self._forwarding.wait()
        if self._closed:
            return
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            _shut(client)
            return
        with self._lock:
            self._sockets.append(upstream)
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._forwarding.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shut(src)
            _shut(dst)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
