"""One parser for every listen address: each form means the same to every flag."""

from __future__ import annotations

import pytest

from msgarchive_server import addresses
from msgarchive_server.addresses import Address
from msgarchive_server.process.config import ConfigError, parse_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:50051", Address("127.0.0.1", 50051)),
        (":9090", Address("127.0.0.1", 9090)),  # a bare port is loopback
        ("0.0.0.0:9464", Address("0.0.0.0", 9464)),  # noqa: S104 (every interface, said)
        ("[::1]:8080", Address("::1", 8080)),
        ("[::]:8080", Address("::", 8080)),
        ("localhost:0", Address("localhost", 0)),
        ("unix:/run/m.sock", Address(path="/run/m.sock")),
        ("unix:///run/m.sock", Address(path="/run/m.sock")),
    ],
)
def test_every_form_parses_to_one_address(text: str, expected: Address) -> None:
    assert addresses.parse(text) == expected
    assert addresses.parse(str(expected)) == expected  # the canonical form round-trips


@pytest.mark.parametrize("text", ["", "9090", "host:", "host:port", "a:b:1", "::1:80", "h:99999"])
def test_what_is_no_address_is_refused(text: str) -> None:
    with pytest.raises(addresses.BadAddress, match="expected HOST:PORT"):
        addresses.parse(text)


def test_unix_sockets_only_where_served() -> None:
    with pytest.raises(addresses.BadAddress, match="not served here"):
        addresses.parse("unix:/run/m.sock", unix=False)


@pytest.mark.parametrize("flag", ["--listen", "--metrics-listen", "--http-listen"])
def test_every_listen_flag_takes_a_bare_port_and_names_itself_when_wrong(flag: str) -> None:
    parse_settings([f"{flag}=:9090"], {})
    with pytest.raises(ConfigError, match=f"^{flag} nonsense: expected HOST:PORT"):
        parse_settings([f"{flag}=nonsense"], {})


def test_workers_need_a_fixed_tcp_port() -> None:
    parse_settings(["--workers=2", "--listen=:50051"], {})
    for listen in ("127.0.0.1:0", "unix:/run/m.sock"):
        with pytest.raises(ConfigError, match="--workers needs a TCP address"):
            parse_settings(["--workers=2", f"--listen={listen}"], {})
