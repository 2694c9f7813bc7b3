"""A TCP port on loopback that only counts the connections made to it: the
proof that a refused target got no packet, or, on a port a client expects
a server on, a black hole (the kernel completes the handshake, nothing ever
answers) that counts who tried it."""

from __future__ import annotations

import socket


class Listener:
    def __init__(self, host: str, port: int = 0) -> None:
        self.socket = socket.create_server((host, port))
        self.socket.setblocking(False)
        self.port = self.socket.getsockname()[1]

    def connections(self) -> int:
        """Connections that reached this port (each completes its handshake
        in the kernel, whether or not anyone accepts it)."""
        count = 0
        while True:
            try:
                connection, _ = self.socket.accept()
            except BlockingIOError:
                return count
            connection.close()
            count += 1

    def close(self) -> None:
        self.socket.close()
