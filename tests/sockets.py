"""Socket helpers shared by the HTTP server's tests."""

from __future__ import annotations

import socket


def still_open(sock: socket.socket) -> bool:
    """True if the server has neither answered nor closed this connection."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)
