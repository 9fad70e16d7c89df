"""The accounts file, API keys, access rules and the read rate limit."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from msgarchive_server.domain.accounts import Accounts, AccountsFileError, key_digest, new_api_key
from msgarchive_server.domain.errors import CredentialsMissing, RateLimited, WrongAccount
from msgarchive_server.domain.ratelimit import RateLimiter
from msgarchive_server.edge.access import Access, is_local_address, is_local_peer
from msgarchive_server.stores import Retention
from tests.accounts import basic

KEY_A, KEY_B = "key-of-acme", "key-of-globex"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    return path


def two_accounts(tmp_path: Path) -> Accounts:
    return Accounts.load(
        write(
            tmp_path,
            f"""
[accounts.acme]
store = "s3://archive-a"
api_key_sha256 = ["{key_digest(KEY_A)}"]

[accounts.globex]
store = "s3://archive-b/globex"
api_key_sha256 = ["{key_digest(KEY_B)}"]
""",
        )
    )


def test_keys_identify_their_account(tmp_path: Path) -> None:
    accounts = two_accounts(tmp_path)
    assert accounts.authenticate(basic("acme", KEY_A)) == "acme"
    assert accounts.authenticate(f"Bearer {KEY_B}") == "globex"


@pytest.mark.parametrize(
    ("header", "refusal"),
    [
        (basic("acme", KEY_B), WrongAccount),
        (basic("zeta", KEY_A), WrongAccount),  # any other account than the key's
        (basic("acme", "guess"), CredentialsMissing),
        ("Bearer guess", CredentialsMissing),
        ("Basic !!!", CredentialsMissing),
        ("Basic " + base64.b64encode(b"no-colon").decode(), CredentialsMissing),
        ("Token abc", CredentialsMissing),
        (f"Apikey {KEY_A}", CredentialsMissing),  # sorts before "basic"
        (f"Digest {KEY_A}", CredentialsMissing),  # between "basic" and "bearer"
        (f"Negotiate {KEY_A}", CredentialsMissing),  # after "bearer"
        # Base64 with a character outside its alphabet is refused, not skipped.
        ("Basic " + base64.b64encode(f"acme:{KEY_A}".encode()).decode() + "!", CredentialsMissing),
    ],
)
def test_bad_credentials(tmp_path: Path, header: str, refusal: type[Exception]) -> None:
    with pytest.raises(refusal) as raised:
        two_accounts(tmp_path).authenticate(header)
    assert KEY_A not in str(raised.value)
    assert KEY_B not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            "[accounts.a]\nstore = 's3://bkt/x'\n[accounts.b]\nstore = 's3://bkt/x/y'",
            "share a store",
        ),
        ("[accounts.a]\nstore = 's3://bkt'\n[accounts.b]\nstore = 's3://bkt/b'", "share a store"),
        ("[accounts.a]\nstore = 's3://bkt'\napi_key_sha256 = ['abc']", "64 lowercase hex"),
        ("[accounts.a]\nstore = 'gs://x'", "unknown store URL scheme"),
        ("[accounts.a]\nstore = 's3://bkt'\nregion = 'x'", "unknown setting 'region'"),
        ("[accounts.a]\nstore = 's3://bkt'\nzone = 1\nregion = 'x'", "unknown setting 'region'"),
        (
            "[accounts.a]\nstore = 's3://bkt'\nretention_mode = 'GOVERNANCE'\nretention_days = 0",
            "a positive number of days",
        ),
        (
            "[accounts.a]\nstore = 's3://bkt'\nretention_mode = 'GOVERNANCE'",
            "retention_mode (GOVERNANCE or COMPLIANCE) and retention_days",
        ),
        (
            "[accounts.a]\nstore = 's3://bkt'\nretention_mode = 'x'\nretention_days = 3",
            "retention_mode (GOVERNANCE or COMPLIANCE) and retention_days",
        ),
        ("[accounts.a]\napi_key_sha256 = []", "needs store"),
        ("[accounts]", "no [accounts.<id>] tables"),
        ("accounts = [", "not valid TOML"),
        (
            f"[accounts.a]\nstore='s3://bkt1'\napi_key_sha256=['{'a' * 64}']\n"
            f"[accounts.b]\nstore='s3://bkt2'\napi_key_sha256=['{'a' * 64}']",
            "listed twice",
        ),
    ],
)
def test_bad_accounts_files(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(AccountsFileError) as raised:
        Accounts.load(write(tmp_path, text))
    assert says in str(raised.value)


def test_new_api_keys_are_random_and_hashed() -> None:
    (key1, digest1), (key2, _) = new_api_key(), new_api_key()
    assert key1 != key2
    assert digest1 == key_digest(key1)
    assert len(key1) == len("ma_") + 43  # 32 random bytes, URL-safe base64


def test_rate_limit_trips_and_recovers() -> None:
    now = [100.0]
    limiter = RateLimiter(60, clock=lambda: now[0])  # one a second, bursts of 60
    assert all(limiter.acquire("acme") == 0 for _ in range(60))
    assert limiter.acquire("acme") == pytest.approx(1.0)
    assert limiter.acquire("globex") == 0  # per account
    now[0] += 1.0
    assert limiter.acquire("acme") == 0


def test_the_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    now = [0.0]
    limiter = RateLimiter(120, clock=lambda: now[0])  # two a second, bursts of 120
    assert all(limiter.acquire("acme") == 0 for _ in range(120))
    assert limiter.acquire("acme") == pytest.approx(0.5)  # the next token, in 1/2 s
    now[0] += 0.25
    assert limiter.acquire("acme") == pytest.approx(0.25)  # half of it came
    now[0] += 0.25
    assert limiter.acquire("acme") == 0
    now[0] += 3600  # an hour idle fills the bucket, no more
    assert all(limiter.acquire("acme") == 0 for _ in range(120))
    assert limiter.acquire("acme") > 0


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.8.9.1:5000", True),
        ("ipv6:[::1]:5000", True),
        ("ipv6:[::ffff:127.0.0.1]:5000", True),
        ("unix:/run/msgarchive.sock", True),
        ("unix:", True),
        ("ipv4:10.1.2.3:5000", False),
        ("ipv6:[2001:db8::1]:5000", False),
        ("ipv6:[::ffff:198.18.0.1]:5000", False),
        ("ipv4:198.18.0.1:5000", False),
    ],
)
def test_local_peers(peer: str, local: bool) -> None:
    assert is_local_peer(peer) is local


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("198.18.0.1", False),
        ("", False),
        ("localhost", False),  # an HTTP peer is an address, never a name
    ],
)
def test_local_addresses(address: str, local: bool) -> None:
    assert is_local_address(address) is local


def access(accounts: Accounts, per_minute: int = 1000) -> Access:
    tenants = {name: object() for name in accounts.accounts}
    default = None if accounts.accounts else object()
    return Access(accounts, tenants, default, RateLimiter(per_minute))  # type: ignore[arg-type]


def test_open_mode_serves_local_callers_only() -> None:
    opened = access(Accounts({}))
    assert opened.archive_tenant("anyone", "", local=True) is opened.default
    assert opened.read_tenant("", local=True)[1] is opened.default
    with pytest.raises(CredentialsMissing):
        opened.archive_tenant("anyone", "", local=False)
    with pytest.raises(CredentialsMissing):
        opened.read_tenant("", local=False)


def test_keyed_mode(tmp_path: Path) -> None:
    keyed = access(two_accounts(tmp_path))
    assert keyed.archive_tenant("acme", "", local=True) is keyed.tenants["acme"]
    assert keyed.archive_tenant("unknown", "", local=True) is None
    assert keyed.archive_tenant("acme", f"Bearer {KEY_A}", local=False) is keyed.tenants["acme"]
    with pytest.raises(WrongAccount):
        keyed.archive_tenant("globex", f"Bearer {KEY_A}", local=True)
    with pytest.raises(CredentialsMissing):
        keyed.archive_tenant("acme", "", local=False)
    with pytest.raises(CredentialsMissing):
        keyed.read_tenant("", local=True)  # reads need a key once keys exist
    account, tenant = keyed.read_tenant(basic("globex", KEY_B), local=False)
    assert (account, tenant) == ("globex", keyed.tenants["globex"])


def test_reads_are_rate_limited_per_account(tmp_path: Path) -> None:
    keyed = access(two_accounts(tmp_path), per_minute=2)
    keyed.read_tenant(f"Bearer {KEY_A}", local=True)
    keyed.read_tenant(f"Bearer {KEY_A}", local=True)
    with pytest.raises(RateLimited) as raised:
        keyed.read_tenant(f"Bearer {KEY_A}", local=True)
    assert raised.value.retry_after is not None
    assert 0 < raised.value.retry_after <= 30
    keyed.read_tenant(f"Bearer {KEY_B}", local=True)


def test_an_account_may_set_its_own_retention(tmp_path: Path) -> None:
    accounts = Accounts.load(
        write(
            tmp_path,
            "[accounts.a]\nstore = 's3://bkt1'\nretention_mode = 'COMPLIANCE'\n"
            "retention_days = 2557\n[accounts.b]\nstore = 's3://bkt2'\n",
        )
    )
    assert accounts.accounts["a"].retention == Retention("COMPLIANCE", 2557)
    assert accounts.accounts["b"].retention is None  # the sidecar's setting applies


def test_one_day_is_the_shortest_retention_an_account_may_set(tmp_path: Path) -> None:
    text = "[accounts.a]\nstore = 's3://bkt1'\nretention_mode = 'GOVERNANCE'\nretention_days = 1\n"
    accounts = Accounts.load(write(tmp_path, text))
    assert accounts.accounts["a"].retention == Retention("GOVERNANCE", 1)


REVIEWERS = f"""
[accounts.acme]
store = "s3://archive-a"
api_key_sha256 = ["{key_digest(KEY_A)}"]

[accounts.globex]
store = "s3://archive-b/globex"
api_key_sha256 = ["{key_digest(KEY_B)}"]

[reviewers.jane]
account = "acme"
role = "hold"
api_key_sha256 = ["{key_digest("jane-key")}"]

[reviewers.sam]
account = "globex"
role = "view"
api_key_sha256 = ["{key_digest("sam-key")}"]
"""


def test_reviewers_sign_in_to_their_account_with_their_role(tmp_path: Path) -> None:
    accounts = Accounts.load(write(tmp_path, REVIEWERS))
    jane, sam = accounts.sign_in("jane-key"), accounts.sign_in("sam-key")
    assert jane is not None
    assert sam is not None
    assert (jane.account_id, jane.name, jane.role) == ("acme", "jane", "hold")
    assert (sam.account_id, sam.name, sam.role) == ("globex", "sam", "view")
    owner = accounts.sign_in(KEY_B)  # an account's own key: export, no holds
    assert owner is not None
    assert (owner.account_id, owner.name, owner.role) == ("globex", "globex", "export")
    assert accounts.sign_in("nobody's key") is None
    assert accounts.sign_in("") is None
    # A reviewer's key opens no read of the sidecar.
    with pytest.raises(CredentialsMissing):
        accounts.authenticate("Bearer jane-key")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (('account = "acme"', 'account = "initech"'), "account must name"),
        (('role = "hold"', 'role = "admin"'), "role must be one of view, export, hold"),
        (('role = "hold"', 'role = "hold"\nteam = "legal"'), "unknown setting 'team'"),
        ((f'["{key_digest("jane-key")}"]', "[]"), "api_key_sha256 must be a list"),
        ((f'["{key_digest("jane-key")}"]', f'["{key_digest(KEY_A)}"]'), "listed twice"),
        (("[reviewers.jane]", "[reviewers.'jane doe']"), "the name may use"),
    ],
)
def test_bad_reviewers_are_refused(tmp_path: Path, change: tuple[str, str], says: str) -> None:
    with pytest.raises(AccountsFileError, match=says):
        Accounts.load(write(tmp_path, REVIEWERS.replace(*change, 1)))
