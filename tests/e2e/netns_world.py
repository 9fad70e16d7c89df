"""Run inside a fresh network namespace (`unshare -n`) by test_remote_callers.py.

It gives `lo` an address of its own (198.18.0.1, from the benchmarking range),
starts sidecars listening on that address, and calls them there, so that each
call's peer is 198.18.0.1, not loopback: the sidecar treats the caller as
remote. Nothing in the namespace reaches beyond it; the stores are local
directories. It prints one JSON object: each call's outcome (a gRPC status
code name, or an HTTP status), for the test to judge.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from msgarchive import ArchiveClient, MsgArchiveError
from msgarchive.v1 import archive_service_pb2 as pb
from tests import samples
from tests.accounts import KEYS, accounts_file, authorization_header
from tests.sidecar import SidecarProcess

ADDRESS = "198.18.0.1"


def outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except MsgArchiveError as err:
        return err.code.name
    return "OK"


def http_view(port: int, body: pb.ViewMessageRequest, *headers: str) -> int:
    fields = {
        "user_id": body.user_id,
        "campaign_channel": body.campaign_channel,
        "campaign_id": body.campaign_id,
        "sent_epoch_time": body.sent_epoch_time,
        "event_name": body.event_name,
        "platform": body.platform,
    }
    done = subprocess.run(
        ["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}",
         "--max-time", "60", "--data", json.dumps(fields),
         *(part for header in headers for part in ("--header", header)),
         f"http://{ADDRESS}:{port}/v1/archival/view"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return int(done.stdout)


def start(workdir: Path, host: str, *extra: str) -> SidecarProcess:
    return SidecarProcess(
        [f"--listen={host}:0", f"--http-listen={host}:0", *extra], cwd=workdir
    ).start()


def with_accounts(workdir: Path) -> dict[str, object]:
    stores = {name: str(workdir / name) for name in KEYS}
    accounts = accounts_file(workdir / "accounts.toml", stores)
    sidecar = start(workdir, ADDRESS, f"--accounts={accounts}")
    seen: dict[str, object] = {}
    target = f"{ADDRESS}:{sidecar.port}"
    today = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
    request = samples.sms_request(account_id="acme", batch_id=today)  # viewable by its send time
    try:
        with ArchiveClient(target) as nobody:
            seen["grpc archive, no key"] = outcome(lambda: nobody.archive(request))
        with ArchiveClient(target, api_key=KEYS["globex"]) as globex:
            seen["grpc archive, another account's key"] = outcome(lambda: globex.archive(request))
        with ArchiveClient(target, api_key=KEYS["acme"], account_id="acme") as acme:
            ack = acme.archive(request)
            seen["grpc archive, the account's key"] = "OK"
            view = pb.ViewMessageRequest(
                user_id=request.sms.to,
                campaign_channel="SMS",
                campaign_id=request.campaign_id,
                sent_epoch_time=ack.sent_at_ms // 1000,
                event_name="SMS Sent",
                platform="SMS",
            )
            by_key = pb.GetArchivedMessageRequest(key=ack.key)
            seen["grpc view, the account's key"] = outcome(lambda: acme.view_message(view))
            seen["grpc get, the account's key"] = outcome(lambda: acme.get_archived_message(by_key))
        with ArchiveClient(target) as nobody:
            seen["grpc view, no key"] = outcome(lambda: nobody.view_message(view))
            seen["grpc get, no key"] = outcome(lambda: nobody.get_archived_message(by_key))
        with ArchiveClient(target, api_key=KEYS["globex"], account_id="globex") as globex:
            seen["grpc view, another account's key"] = outcome(lambda: globex.view_message(view))
            seen["grpc get, another account's key"] = outcome(
                lambda: globex.get_archived_message(by_key)
            )
        http = int(sidecar.serving["http_port"])
        seen["http view, no key"] = http_view(http, view)
        seen["http view, another account's key"] = http_view(
            http, view, authorization_header("globex")
        )
        seen["http view, another account's key naming acme"] = http_view(
            http, view, authorization_header("globex"), "MOE-APPKEY: acme"
        )
        seen["http view, the account's key"] = http_view(
            http, view, authorization_header("acme"), "MOE-APPKEY: acme"
        )
        seen["serving address"] = sidecar.serving["listen"]
    finally:
        sidecar.kill()
    return seen


def without_keys(workdir: Path) -> dict[str, object]:
    """No accounts file: only callers on this host are served."""
    # On every address of the namespace: loopback, and the one of its own.
    sidecar = start(workdir, "0.0.0.0", f"--store={workdir / 'open'}")  # noqa: S104
    seen: dict[str, object] = {}
    try:
        with ArchiveClient(f"{ADDRESS}:{sidecar.port}") as remote:
            seen["grpc archive, no keys configured"] = outcome(
                lambda: remote.archive(samples.sms_request())
            )
            view = pb.ViewMessageRequest(
                user_id="+1 (555) 555-5555",
                campaign_channel="SMS",
                campaign_id="1722529032",
                sent_epoch_time=1_700_000_000,
                event_name="SMS Sent",
                platform="SMS",
            )
            seen["grpc view, no keys configured"] = outcome(lambda: remote.view_message(view))
        seen["http view, no keys configured"] = http_view(int(sidecar.serving["http_port"]), view)
        with ArchiveClient(f"127.0.0.1:{sidecar.port}") as local:
            seen["grpc archive from loopback, no keys configured"] = outcome(
                lambda: local.archive(samples.sms_request())
            )
    finally:
        sidecar.kill()
    return seen


def main() -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{ADDRESS}/32", "dev", "lo"], check=True)
    with tempfile.TemporaryDirectory() as where:
        workdir = Path(where)
        (workdir / "open").mkdir()
        seen = {**with_accounts(workdir), **without_keys(workdir)}
    json.dump(seen, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
