"""Accounts: which store each account's copies go to, and its API keys.

The accounts file is TOML:

    [accounts.acme]
    store = "s3://archive-bucket/acme"
    api_key_sha256 = ["<64 hex digits>"]   # msgarchive api-key prints one
    retention_mode = "COMPLIANCE"           # optional: this account's own
    retention_days = 2557                   # retention, over --retention-*

Reviewers sign in to the console (`msgarchive console`) with keys of their
own, each for one account and with a role; those keys open no gRPC or HTTP
read:

    [reviewers.jane]
    account = "acme"
    role = "hold"                           # view; export (and view); hold (and both)
    api_key_sha256 = ["<64 hex digits>"]

Keys are kept only as SHA-256 digests (API keys are random, so a fast hash
suits them) and compared in constant time. Accounts may not share a store
location or nest one inside another's, so one account can never reach
another's copies. Without a file, one default store serves every account.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from msgarchive_server.domain.errors import CredentialsMissing, WrongAccount
from msgarchive_server.stores.base import RETENTION_MODES, Retention
from msgarchive_server.stores.location import BadLocation, parse_location

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9_.@-]{1,256}")


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    store: str
    key_digests: tuple[str, ...]
    retention: Retention | None = None  # None: the sidecar's --retention-*


# A reviewer's role: what each may do in the console, each including the ones before.
REVIEWER_ROLES = ("view", "export", "hold")
# An account's own API key signs in to the console with this role: holds are
# placed by a named reviewer.
ACCOUNT_KEY_ROLE = "export"


@dataclass(frozen=True, slots=True)
class ReviewerKey:
    name: str
    account_id: str
    role: str
    key_digests: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who a console key belongs to: the account, a name, a role."""

    account_id: str
    name: str
    role: str


class AccountsFileError(Exception):
    """The accounts file is unreadable or invalid; one line naming what is wrong."""


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """A fresh API key and its digest, for the accounts file."""
    key = "ma_" + secrets.token_urlsafe(32)
    return key, key_digest(key)


class Accounts:
    """The configured accounts; empty when there is no accounts file."""

    def __init__(
        self, accounts: dict[str, Account], reviewers: dict[str, ReviewerKey] | None = None
    ) -> None:
        self.accounts = accounts
        self.reviewers = reviewers or {}
        self._digests = [(a.account_id, d) for a in accounts.values() for d in a.key_digests]
        self._reviewer_digests = [(r, d) for r in self.reviewers.values() for d in r.key_digests]

    @property
    def has_keys(self) -> bool:
        return bool(self._digests)

    @classmethod
    def load(cls, path: Path) -> Accounts:
        """Read and check an accounts file; AccountsFileError names what is wrong."""
        try:
            data = tomllib.loads(path.read_text())
        except OSError as err:
            raise AccountsFileError(f"--accounts {path}: {err.strerror}") from None
        except tomllib.TOMLDecodeError as err:
            raise AccountsFileError(f"--accounts {path}: not valid TOML: {err}") from None
        table = data.get("accounts")
        if not isinstance(table, dict) or not table:
            raise AccountsFileError(f"--accounts {path}: no [accounts.<id>] tables")
        accounts = {}
        for account_id, entry in table.items():
            accounts[account_id] = _account(path, account_id, entry)
        reviewers_table = data.get("reviewers", {})
        if not isinstance(reviewers_table, dict):
            raise AccountsFileError(
                f"--accounts {path}: reviewers must be [reviewers.<name>] tables"
            )
        reviewers = {
            name: _reviewer(path, name, entry, accounts) for name, entry in reviewers_table.items()
        }
        _check_isolated(path, list(accounts.values()), list(reviewers.values()))
        return cls(accounts, reviewers)

    def sign_in(self, api_key: str) -> SignedIn | None:
        """Who a key signs in to the console as: a reviewer, or an account by its
        own API key (role ACCOUNT_KEY_ROLE); None for an unknown key."""
        digest = key_digest(api_key)
        # Compare against every digest, with no early exit.
        reviewers = [r for r, d in self._reviewer_digests if hmac.compare_digest(d, digest)]
        owners = [a for a, d in self._digests if hmac.compare_digest(d, digest)]
        if reviewers:
            return SignedIn(reviewers[0].account_id, reviewers[0].name, reviewers[0].role)
        if owners:
            return SignedIn(owners[0], owners[0], ACCOUNT_KEY_ROLE)
        return None

    def authenticate(self, authorization: str) -> str:
        """The account an `authorization` header proves; else CredentialsMissing, or
        WrongAccount when the key is another account's than the one claimed.

        `Basic base64(account_id:api_key)` or `Bearer api_key`.
        """
        scheme, _, credential = authorization.strip().partition(" ")
        claimed = ""
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credential.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise CredentialsMissing("malformed Basic credentials") from None
            claimed, colon, key = decoded.partition(":")
            if not colon:
                raise CredentialsMissing("Basic credentials must be account_id:api_key")
        elif scheme.lower() == "bearer":
            key = credential.strip()
        else:
            raise CredentialsMissing(
                "use Basic (account_id:api_key) or Bearer (api_key) credentials"
            )
        if not self.has_keys:
            raise CredentialsMissing("no API keys are configured")
        digest = key_digest(key)
        # Compare against every digest, with no early exit.
        owners = [acc for acc, d in self._digests if hmac.compare_digest(d, digest)]
        if not owners:
            raise CredentialsMissing("unknown API key")
        owner = owners[0]
        if claimed and claimed != owner:
            raise WrongAccount("the API key belongs to another account")
        return owner


def _account(path: Path, account_id: str, entry: object) -> Account:
    where = f"--accounts {path}: account {account_id!r}"
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise AccountsFileError(f"{where}: the id may use A-Z a-z 0-9 _ . @ - only")
    if not isinstance(entry, dict) or not isinstance(entry.get("store"), str):
        raise AccountsFileError(f'{where}: needs store = "s3://BUCKET[/PREFIX]" or a directory')
    try:
        parse_location(entry["store"])
    except BadLocation as err:
        raise AccountsFileError(f"{where}: store {entry['store']}: {err}") from None
    digests = entry.get("api_key_sha256", [])
    if not isinstance(digests, list) or not all(
        isinstance(d, str) and _HEX_DIGEST.fullmatch(d) for d in digests
    ):
        raise AccountsFileError(
            f"{where}: api_key_sha256 must be a list of 64 lowercase hex digits"
        )
    unknown = set(entry) - {"store", "api_key_sha256", "retention_mode", "retention_days"}
    if unknown:
        raise AccountsFileError(f"{where}: unknown setting {sorted(unknown)[0]!r}")
    return Account(account_id, entry["store"], tuple(digests), _retention(where, entry))


def _reviewer(path: Path, name: str, entry: object, accounts: dict[str, Account]) -> ReviewerKey:
    where = f"--accounts {path}: reviewer {name!r}"
    if not _ACCOUNT_ID.fullmatch(name):
        raise AccountsFileError(f"{where}: the name may use A-Z a-z 0-9 _ . @ - only")
    if not isinstance(entry, dict):
        raise AccountsFileError(f"{where}: needs account, role and api_key_sha256")
    unknown = set(entry) - {"account", "role", "api_key_sha256"}
    if unknown:
        raise AccountsFileError(f"{where}: unknown setting {sorted(unknown)[0]!r}")
    if entry.get("account") not in accounts:
        raise AccountsFileError(f"{where}: account must name an [accounts.<id>] of this file")
    if entry.get("role") not in REVIEWER_ROLES:
        raise AccountsFileError(f"{where}: role must be one of {', '.join(REVIEWER_ROLES)}")
    digests = entry.get("api_key_sha256")
    if (
        not isinstance(digests, list)
        or not digests
        or not all(isinstance(d, str) and _HEX_DIGEST.fullmatch(d) for d in digests)
    ):
        raise AccountsFileError(
            f"{where}: api_key_sha256 must be a list of 64 lowercase hex digits"
        )
    return ReviewerKey(name, str(entry["account"]), str(entry["role"]), tuple(digests))


def _retention(where: str, entry: dict[str, object]) -> Retention | None:
    mode, days = entry.get("retention_mode"), entry.get("retention_days")
    if mode is None and days is None:
        return None
    if mode not in RETENTION_MODES or not isinstance(days, int) or days < 1:
        raise AccountsFileError(
            f"{where}: retention_mode (GOVERNANCE or COMPLIANCE) and retention_days "
            "(a positive number of days) go together"
        )
    return Retention(str(mode), days)


def _check_isolated(
    path: Path, accounts: list[Account], reviewers: list[ReviewerKey] | None = None
) -> None:
    """No two accounts may share or nest store locations, and no key is listed twice."""
    places = [(account.account_id, parse_location(account.store).url) for account in accounts]
    for i, (first, a) in enumerate(places):
        for second, b in places[i + 1 :]:
            if a.startswith(b) or b.startswith(a):
                raise AccountsFileError(
                    f"--accounts {path}: accounts {first!r} and {second!r} share a store "
                    "location; give each its own bucket or prefix"
                )
    seen: set[str] = set()
    digests = [d for a in accounts for d in a.key_digests]
    digests += [d for r in reviewers or [] for d in r.key_digests]
    for digest in digests:
        if digest in seen:
            raise AccountsFileError(f"--accounts {path}: one API key is listed twice")
        seen.add(digest)
