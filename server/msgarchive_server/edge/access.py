"""Who may do what, and against which store.

- Without API keys, only local callers (loopback or a unix socket) are
  served: the sidecar's own pod. Reads then see the default store.
- With API keys, reads need `authorization: Basic base64(account:key)` or
  `Bearer key`, and see only the key's account's store. Archive needs no key
  from a local caller; from anywhere else it needs the key of the account it
  archives for.
- Reads are rate limited per account.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from msgarchive_server.domain.accounts import Accounts
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.circuit import StoreCircuit
from msgarchive_server.domain.errors import CredentialsMissing, RateLimited, WrongAccount
from msgarchive_server.domain.ratelimit import RateLimiter
from msgarchive_server.domain.reads import Reader
from msgarchive_server.stores import Store

if TYPE_CHECKING:
    from msgarchive_server.domain.manifests.sealer import Sealer

OPEN_ACCOUNT = "-"  # the rate-limit bucket of unauthenticated local reads


@dataclass
class Tenant:
    """One store and what works on it."""

    store: Store
    circuit: StoreCircuit
    archiver: Archiver
    reader: Reader
    sealer: Sealer | None = None  # with manifests, in the process that seals them

    @property
    def takes_archives(self) -> bool:
        """False while the store's circuit is open or the journal's disk is full."""
        journal = self.archiver.journal
        return not self.circuit.is_open and not (journal is not None and journal.full)


class Access:
    def __init__(
        self,
        accounts: Accounts,
        tenants: dict[str, Tenant],
        default: Tenant | None,
        limiter: RateLimiter,
    ) -> None:
        self.accounts = accounts
        self.tenants = tenants
        self.default = default
        self.limiter = limiter

    def archive_tenant(self, account_id: str, authorization: str, local: bool) -> Tenant | None:
        """The tenant that archives for `account_id`, None for an unknown account.

        Raises CredentialsMissing or WrongAccount when the caller may not archive for it.
        """
        if authorization:
            if self.accounts.authenticate(authorization) != account_id:
                raise WrongAccount("the API key belongs to another account")
        elif not local:
            raise CredentialsMissing("archiving from beyond this host needs the account's API key")
        return self.tenants.get(account_id, self.default)

    def check_archiver(self, authorization: str, local: bool) -> None:
        """Refuse, before its first message, a stream from a caller who could
        archive for no account: unknown credentials, or none from beyond this
        host. (Each message's account is still checked against the key.)"""
        if authorization:
            self.accounts.authenticate(authorization)
        elif not local:
            raise CredentialsMissing("archiving from beyond this host needs the account's API key")

    def read_tenant(self, authorization: str, local: bool) -> tuple[str, Tenant]:
        """The caller's account and tenant for a read, after auth and rate limit.

        Raises CredentialsMissing, WrongAccount or RateLimited.
        """
        if authorization or self.accounts.has_keys:
            if not authorization:
                raise CredentialsMissing(
                    "reads need credentials: Basic account_id:api_key, or Bearer"
                )
            account = self.accounts.authenticate(authorization)
            tenant = self.tenants[account]
        elif not local:
            raise CredentialsMissing("reads from beyond this host need API keys to be configured")
        elif self.default is None:
            raise CredentialsMissing("reads need an account's API key")
        else:
            account, tenant = OPEN_ACCOUNT, self.default
        wait = self.limiter.acquire(account)
        if wait:
            raise RateLimited(account, wait)
        return account, tenant


def peer_host(peer: str) -> str:
    """The caller's address without its port (gRPC's `context.peer()`): one peer
    however many connections it opens; "unix" for every unix-socket caller."""
    if peer.startswith("unix"):
        return "unix"
    kind, _, rest = peer.partition(":")
    return f"{kind}:{rest.rsplit(':', 1)[0]}" if kind in ("ipv4", "ipv6") else peer


def is_local_peer(peer: str) -> bool:
    """True for a caller on loopback or a unix socket (gRPC's `context.peer()`)."""
    if peer.startswith("unix"):
        return True
    if peer.startswith("ipv4:"):
        return is_local_address(peer[5:].rsplit(":", 1)[0])
    if peer.startswith("ipv6:"):
        return is_local_address(peer[5:].rsplit(":", 1)[0].strip("[]"))
    return False


@functools.lru_cache(maxsize=1024)  # callers come from a few hosts; parsing one takes ~7 µs
def is_local_address(host: str) -> bool:
    """True for a loopback address (IPv4, IPv6, or IPv4 mapped into IPv6)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
