"""Two accounts, acme and globex, each with its own store and API key."""

from __future__ import annotations

import base64
from pathlib import Path

from msgarchive_server.domain.accounts import key_digest

KEYS = {"acme": "ma_acme_test_key_0123456789", "globex": "ma_globex_test_key_9876543210"}


def accounts_file(path: Path, stores: dict[str, str]) -> Path:
    """An accounts file at `path` giving each account of KEYS its store URL."""
    path.write_text(
        "".join(
            f'[accounts.{name}]\nstore = "{stores[name]}"\n'
            f'api_key_sha256 = ["{key_digest(key)}"]\n\n'
            for name, key in KEYS.items()
        )
    )
    return path


def s3_stores(buckets: dict[str, str]) -> dict[str, str]:
    """acme at the root of its bucket, globex under a prefix of its own."""
    return {"acme": f"s3://{buckets['acme']}", "globex": f"s3://{buckets['globex']}/globex"}


def basic(account: str, key: str | None = None) -> str:
    """HTTP Basic credentials as an Authorization value: `account`'s key of KEYS,
    unless `key` is given."""
    secret = KEYS[account] if key is None else key
    return "Basic " + base64.b64encode(f"{account}:{secret}".encode()).decode()


def authorization_header(account: str, key: str | None = None) -> str:
    """The same, as a header line (curl's -H)."""
    return f"Authorization: {basic(account, key)}"
