"""`msgarchive search` end to end: copies archived by a sidecar, found across
campaigns and months, from the store's listing and from its signed manifests."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from msgarchive import ArchiveClient
from msgarchive.v1 import archive_service_pb2 as pb
from tests import samples
from tests.accounts import accounts_file
from tests.inventory import inventory, publish
from tests.seaweed import SeaweedFS
from tests.sidecar import SidecarProcess, manifest_key_pair, s3_sidecar

pytestmark = pytest.mark.e2e

NUMBER = "+1 (555) 555-5555"  # the SMS and WhatsApp samples' recipient
OTHER_NUMBER = "+44 20 7946 0018"


def requests() -> dict[str, pb.ArchiveRequest]:
    """Copies for one person in two campaigns and two months, and one for another."""
    later = samples.sms_request(batch_id="20241015", campaign_id="c-october", created_at_ms=2)
    other = samples.sms_request(campaign_id="c-other", created_at_ms=3)
    other.sms.to = OTHER_NUMBER
    return {
        "sms": samples.sms_request(),
        "whatsapp": samples.whatsapp_request(),
        "email": samples.email_request(),
        "push": samples.push_request(),
        "sms-october": later,
        "other": other,
    }


@dataclass
class Archived:
    store: str  # the --store URL
    flags: list[str]  # what else every command needs
    keys: dict[str, str]  # name -> key
    env: dict[str, str]


def archive_all(sidecar: SidecarProcess) -> dict[str, str]:
    with ArchiveClient(sidecar.address) as client:
        return {name: client.archive(request).key for name, request in requests().items()}


def search(archived: Archived, *args: str) -> tuple[int, list[dict[str, object]], str]:
    done = subprocess.run(
        [sys.executable, "-m", "msgarchive_server", "search", f"--store={archived.store}",
         *archived.flags, *args],
        capture_output=True, text=True, env=archived.env, timeout=120, check=False,
    )  # fmt: skip
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, rows, done.stderr


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Archived:
    """The zero-config store `make run` writes: a directory, no manifests."""
    root = tmp_path_factory.mktemp("search")
    sidecar = SidecarProcess(["--listen=127.0.0.1:0", f"--store={root / 'archive'}"]).start()
    try:
        keys = archive_all(sidecar)
    finally:
        sidecar.stop()
    return Archived(str(root / "archive"), [f"--cache-dir={root / 'cache'}"], keys, {})


@pytest.fixture(scope="module")
def bucket_with_manifests(seaweed: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Archived:
    root = tmp_path_factory.mktemp("search-s3")
    bucket = seaweed.new_bucket(object_lock=True)  # versioned, and legal holds work
    key_file, _ = manifest_key_pair(root)
    sidecar = s3_sidecar(
        bucket, seaweed.endpoint, seaweed.env,
        f"--manifests-dir={root / 'journal'}", f"--manifest-signing-key={key_file}",
    )  # fmt: skip
    try:
        keys = archive_all(sidecar)
    finally:
        assert sidecar.stop() == 0  # seals: every ack is in a signed manifest
    flags = [f"--cache-dir={root / 'cache'}", f"--s3-endpoint-url={seaweed.endpoint}"]
    return Archived(f"s3://{bucket}", flags, keys, {**seaweed.env, "KEY_FILE": str(key_file)})


@pytest.fixture(params=["directory", "bucket_with_manifests"])
def archived(request: pytest.FixtureRequest) -> Archived:
    found: Archived = request.getfixturevalue(request.param)
    return found


def keys_of(rows: list[dict[str, object]]) -> set[object]:
    return {row["key"] for row in rows}


def test_a_person_is_found_across_channels_campaigns_and_months(archived: Archived) -> None:
    code, rows, err = search(archived, f"--recipient={NUMBER}")
    assert code == 0, err
    names = ("sms", "whatsapp", "sms-october")
    assert keys_of(rows) == {archived.keys[n] for n in names}
    assert [row["sent_time"] for row in rows] == sorted(str(row["sent_time"]) for row in rows)
    audit = json.loads(err.strip().splitlines()[-1])
    assert audit["audit"] == "search"
    assert audit["count"] == 3
    assert NUMBER not in err  # the audit line names the person by hash only
    assert "15555555555" not in err
    # Written another way, the same person.
    code, again, _ = search(archived, "--recipient=15555555555", "--channel=sms")
    assert keys_of(again) == {archived.keys["sms"], archived.keys["sms-october"]}


def test_an_address_in_any_case_and_an_identity(archived: Archived) -> None:
    _, rows, _ = search(archived, "--recipient=  Jane.Doe@EXAMPLE.com ")
    assert keys_of(rows) == {archived.keys["email"]}
    _, rows, _ = search(archived, "--recipient=45142169", "--channel=push")
    assert keys_of(rows) == {archived.keys["push"]}


def test_filters_combine(archived: Archived) -> None:
    _, rows, _ = search(archived, "--campaign-id=c-october")
    assert keys_of(rows) == {archived.keys["sms-october"]}
    message_id = archived.keys["email"].rsplit("/", 1)[1].removesuffix(".json.lz4")
    _, rows, _ = search(archived, f"--message-id={message_id}")
    assert keys_of(rows) == {archived.keys["email"]}
    _, rows, _ = search(archived, "--platform=ios")
    assert keys_of(rows) == {archived.keys["push"]}
    _, rows, _ = search(archived, "--platform=android")
    assert rows == []
    _, rows, _ = search(archived, "--channel=whatsapp", f"--recipient={NUMBER}")
    assert keys_of(rows) == {archived.keys["whatsapp"]}


def test_results_page_in_order_without_repeats(archived: Archived) -> None:
    _, everything, _ = search(archived)
    assert keys_of(everything) == set(archived.keys.values())
    seen: list[object] = []
    after: list[str] = []
    for _ in range(10):
        code, rows, err = search(archived, "--limit=4", *after)
        assert code == 0, err
        seen += [row["key"] for row in rows]
        more = [line for line in err.splitlines() if line.startswith("more: --after ")]
        if not more:
            break
        after = ["--after", more[0].removeprefix("more: --after ")]
    assert seen == [row["key"] for row in everything]


def test_count_gives_totals_by_channel_and_month(archived: Archived) -> None:
    code, rows, err = search(archived, "--count")
    assert code == 0, err
    assert sum(int(str(row["copies"])) for row in rows) == len(archived.keys)
    assert {row["channel"] for row in rows} == {"sms", "whatsapp", "email", "push"}
    sms = [row for row in rows if row["channel"] == "sms"]
    assert sum(int(str(row["copies"])) for row in sms) == 3


def test_the_source_is_the_manifests_when_there_are_any(
    directory: Archived, bucket_with_manifests: Archived
) -> None:
    _, rows, err = search(directory)
    assert json.loads(err.splitlines()[-1])["source"] == "listing"
    assert all(row["sha256"] == "" for row in rows)
    _, rows, err = search(bucket_with_manifests)
    assert json.loads(err.splitlines()[-1])["source"] == "manifests"
    assert all(len(str(row["sha256"])) == 64 for row in rows)


def test_an_s3_inventory_report_is_searched_as_the_listing_is(
    seaweed: SeaweedFS, bucket_with_manifests: Archived, tmp_path: Path
) -> None:
    archived = bucket_with_manifests
    s3 = seaweed.client()
    bucket = archived.store.removeprefix("s3://")
    inventory(s3, bucket, tmp_path / "report.parquet")
    report = publish(s3, bucket, seaweed.new_bucket(), tmp_path / "report.parquet")
    by_inventory = ["--source=inventory", f"--inventory={report}"]
    code, rows, err = search(archived, *by_inventory, f"--recipient={NUMBER}")
    assert code == 0, err
    assert json.loads(err.splitlines()[-1])["source"] == "inventory"
    _, listed, _ = search(archived, "--source=listing", f"--recipient={NUMBER}")
    assert (
        keys_of(rows)
        == keys_of(listed)
        == {archived.keys[name] for name in ("sms", "sms-october", "whatsapp")}
    )
    assert all(row["version_id"] for row in rows)  # an inventory of all versions has them
    _, rows, _ = search(archived, *by_inventory, "--campaign-id=c-october")
    assert keys_of(rows) == {archived.keys["sms-october"]}
    _, _, err = search(archived, f"--inventory={report}")  # auto: the manifests come first
    assert json.loads(err.splitlines()[-1])["source"] == "manifests"
    csv_report = report.replace("manifest.json", "csv/manifest.json")
    destination, _, key = csv_report.removeprefix("s3://").partition("/")
    s3.put_object(Bucket=destination, Key=key, Body=json.dumps({"fileFormat": "CSV", "files": []}))
    code, _, err = search(archived, "--source=inventory", f"--inventory={csv_report}")
    assert code == 2
    assert "a CSV report; only Parquet ones are read" in err


def test_held_copies_are_found_by_their_hold(bucket_with_manifests: Archived) -> None:
    archived = bucket_with_manifests

    def hold(on_or_off: str) -> None:
        held = subprocess.run(
            [sys.executable, "-m", "msgarchive_server", "hold", on_or_off, archived.store,
             "--campaign-id=c-october", "--reason=case 7",
             f"--signing-key={archived.env['KEY_FILE']}", *archived.flags[1:]],
            capture_output=True, text=True, env=archived.env, timeout=120, check=False,
        )  # fmt: skip
        assert held.returncode == 0, held.stderr

    hold("on")
    _, rows, _ = search(archived, "--held")
    assert keys_of(rows) == {archived.keys["sms-october"]}
    _, rows, _ = search(archived, "--not-held", f"--recipient={NUMBER}")
    assert keys_of(rows) == {archived.keys["sms"], archived.keys["whatsapp"]}
    hold("off")  # the last record that names a copy decides
    assert search(archived, "--held")[1] == []
    hold("on")
    assert keys_of(search(archived, "--held")[1]) == {archived.keys["sms-october"]}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--recipient=not-an-address", "--channel=email"], "recipient must be an email address"),
        (["--recipient=12", "--channel=sms"], "recipient must be a phone number"),
        (["--recipient=   "], "recipient must be 1 to 256 characters"),
        (["--since=2026-02-01", "--until=2026-01-01"], "until must be after since"),
        (["--since=yesterday"], "--since 'yesterday': expected a date"),
        (["--message-id=abc"], "message_id must be 64 lowercase hex digits"),
        (["--platform=fax"], "platform must be one of"),
        (["--after=bm90LWEtdG9rZW4"], "after is not a token a search handed out"),
        (["--account=acme"], "--account needs --accounts"),
    ],
)
def test_bad_searches_say_why_in_one_line(directory: Archived, args: list[str], says: str) -> None:
    code, rows, err = search(directory, *args)
    assert code == 2
    assert rows == []
    assert says in err
    assert len(err.strip().splitlines()) == 1


def test_with_accounts_a_search_reads_one_accounts_store(
    directory: Archived, tmp_path: Path
) -> None:
    accounts = accounts_file(
        tmp_path / "accounts.toml", {"acme": directory.store, "globex": str(tmp_path / "g")}
    )
    mine = Archived("unused", [*directory.flags, f"--accounts={accounts}"], {}, {})
    code, rows, err = search(mine, "--account=acme", f"--recipient={NUMBER}")
    assert code == 0, err
    assert len(rows) == 3
    assert json.loads(err.splitlines()[-1])["account"] == "acme"
    code, rows, err = search(mine, "--account=globex", f"--recipient={NUMBER}")
    assert (code, rows) == (0, [])
    code, _, err = search(mine, f"--recipient={NUMBER}")
    assert code == 2
    assert "--accounts needs --account" in err
