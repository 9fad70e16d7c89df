"""Listen addresses: one parser for every `HOST:PORT` or `unix:PATH` setting.

`--listen`, `--metrics-listen` and `--http-listen` all go through `parse`, so
a form one accepts means the same to the others:

    127.0.0.1:50051   [::1]:50051   localhost:50051   0.0.0.0:9464
    :9464             loopback (127.0.0.1): a bare port never means every interface
    unix:/run/msgarchive.sock   unix:///run/msgarchive.sock   (unix: where allowed)

Listening on every interface is said explicitly: `0.0.0.0:PORT` or `[::]:PORT`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
_TCP = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.%\w]*)\]|(?P<host>[^\s:\[\]/]*)):(?P<port>\d{1,5})")


class BadAddress(ValueError):
    """The text is no address of the accepted forms; the message says which forms."""


@dataclass(frozen=True, slots=True)
class Address:
    """A TCP host and port, or a unix socket path (then host is "" and port 0)."""

    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def unix(self) -> bool:
        return bool(self.path)

    def __str__(self) -> str:
        if self.unix:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse(text: str, *, unix: bool = True) -> Address:
    """The address `text` names; BadAddress if it names none (or a unix socket
    where `unix` is False)."""
    forms = "HOST:PORT or unix:PATH" if unix else "HOST:PORT"
    text = text.strip()
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if path.startswith("//"):
            path = path[2:]
        if not unix:
            raise BadAddress(f"expected {forms}: a unix socket is not served here")
        if not path or "\0" in path:
            raise BadAddress(f"expected {forms}: unix: needs a path")
        return Address(path=path)
    found = _TCP.fullmatch(text)
    if found is None:
        raise BadAddress(f"expected {forms}")
    port = int(found["port"])
    if port > 65535:
        raise BadAddress(f"expected {forms}: port {port} is over 65535")
    host = found["v6"] if found["v6"] is not None else found["host"]
    return Address(host=host or LOOPBACK, port=port)


def canonical(text: str, *, unix: bool = True) -> str:
    """`text` in the one form every listener is given (BadAddress if it is none)."""
    return str(parse(text, unix=unix))
