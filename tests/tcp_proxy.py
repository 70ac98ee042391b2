"""A local TCP port relaying to a test's PostgreSQL server, which a test can cut: the network
dropping a connection (or the whole server going away) at a chosen moment, on any server.

The embedded server listens on a Unix socket only, the external one on TCP: the proxy relays to
either, so the same test runs on both. Threads, one pair per relayed connection.
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import quote

import psycopg


class TcpProxy:
    """Relay ``127.0.0.1:<port>`` to the server of ``uri``.

    ``cut_on``: bytes a client sends when it should drop (a statement's text, say), once: the
    connection that sent them is cut before the statement reaches the server; with ``go_down``,
    every relayed connection is cut and every later one is closed at once (a server that went
    away). ``cut_count`` says how many cuts happened.
    """

    def __init__(self, uri: str, *, cut_on: bytes | None = None, go_down: bool = False):
        with psycopg.connect(uri) as probe:
            info = probe.info
            host, port, self._user, self._dbname, self._password = info.host, info.port, info.user, info.dbname, info.password
        self._target = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
        self._cut_on, self._go_down = cut_on, go_down
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.down = False
        self.cut_count = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def uri(self) -> str:
        """The same database, reached through the proxy."""
        password = f":{quote(self._password, safe='')}" if self._password else ""
        return f"postgresql://{quote(self._user, safe='')}{password}@127.0.0.1:{self.port}/{quote(self._dbname, safe='')}"

    def _connect_target(self) -> socket.socket:
        if isinstance(self._target, str):
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self._target)
            return server
        return socket.create_connection(self._target)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self.down:
                _close(client)
                continue
            server = self._connect_target()
            with self._lock:
                self._pairs.append((client, server))
            threading.Thread(target=self._relay, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._relay, args=(server, client, False), daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        tail = b""
        try:
            while data := source.recv(65536):
                if from_client and self._cut_on is not None and self._cut_on in tail + data:
                    self._cut_on = None  # once
                    self._cut(source if not self._go_down else None)
                    return
                tail = data[-len(self._cut_on) :] if self._cut_on else b""
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)

    def _cut(self, client: socket.socket | None) -> None:
        """Cut ``client``'s connection, or (None) go down: every connection, now and later."""
        with self._lock:
            self.cut_count += 1
            if client is None:
                self.down = True
            doomed = [pair for pair in self._pairs if client is None or pair[0] is client]
            self._pairs = [pair for pair in self._pairs if pair not in doomed]
        for pair in doomed:
            for end in pair:
                _close(end)

    def go_down(self) -> None:
        self._cut(None)

    def close(self) -> None:
        self.go_down()
        _close(self._listener)

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _close(end: socket.socket) -> None:
    try:
        end.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    end.close()
