"""Callers beyond loopback, for real: inside a network namespace of the test's own.

`netns_world.py` runs under `unshare -n` (a namespace with only `lo`, given
198.18.0.1): the sidecar and its callers talk over that address, so the
sidecar sees a remote peer. Archive and reads need the account's key, over
gRPC and over HTTP; another account's key reads nothing of this one's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _namespaces_unavailable() -> str:
    """Why this machine cannot make a network namespace, or "" if it can."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip is not installed"
    probe = subprocess.run(
        ["unshare", "-n", "ip", "link", "set", "lo", "up"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    return ""


@pytest.fixture(scope="module")
def seen() -> dict[str, object]:
    unavailable = _namespaces_unavailable()
    if unavailable:
        pytest.skip(unavailable)
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.e2e.netns_world"],
        capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outcomes: dict[str, object] = json.loads(done.stdout)
    return outcomes


def test_the_sidecar_listens_on_the_namespaces_own_address(seen: dict[str, object]) -> None:
    assert str(seen["serving address"]).startswith("198.18.0.1:")


def test_archive_from_beyond_loopback_needs_the_accounts_key(seen: dict[str, object]) -> None:
    archives = {k: v for k, v in seen.items() if k.startswith("grpc archive, ")}
    assert {k: v for k, v in archives.items() if "configured" not in k} == {
        "grpc archive, no key": "UNAUTHENTICATED",
        "grpc archive, another account's key": "PERMISSION_DENIED",
        "grpc archive, the account's key": "OK",
    }


def test_reads_need_the_key_and_see_only_its_account(seen: dict[str, object]) -> None:
    reads = {k: v for k, v in seen.items() if k.startswith(("grpc view, ", "grpc get, "))}
    assert {k: v for k, v in reads.items() if "configured" not in k} == {
        "grpc view, no key": "UNAUTHENTICATED",
        "grpc get, no key": "UNAUTHENTICATED",
        # globex's key reads globex's store, which has no such copy.
        "grpc view, another account's key": "NOT_FOUND",
        "grpc get, another account's key": "NOT_FOUND",
        "grpc view, the account's key": "OK",
        "grpc get, the account's key": "OK",
    }


def test_the_http_view_from_beyond_loopback(seen: dict[str, object]) -> None:
    assert {k: v for k, v in seen.items() if k.startswith("http view, ")} == {
        "http view, no key": 401,
        "http view, another account's key": 404,
        "http view, another account's key naming acme": 403,
        "http view, the account's key": 200,
        "http view, no keys configured": 401,
    }


def test_without_keys_only_loopback_is_served(seen: dict[str, object]) -> None:
    assert {k: v for k, v in seen.items() if k.startswith("grpc") and "configured" in k} == {
        "grpc archive, no keys configured": "UNAUTHENTICATED",
        "grpc view, no keys configured": "UNAUTHENTICATED",
        "grpc archive from loopback, no keys configured": "OK",
    }
