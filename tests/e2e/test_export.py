"""`msgarchive export` and `check-production`: productions of a sidecar's copies,
read back with independent readers of each format (Python's email parser,
zipfile, the csv module) and checked with the two public keys alone."""

from __future__ import annotations

import csv
import email
import email.policy
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from msgarchive import ArchiveClient
from tests import samples
from tests.seaweed import SeaweedFS
from tests.sidecar import SidecarProcess, manifest_key_pair, s3_sidecar

pytestmark = pytest.mark.e2e

NUMBER = "+1 (555) 555-5555"


def msgarchive(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "msgarchive_server", *args],
        capture_output=True, text=True, env=env, timeout=180, check=False,
    )  # fmt: skip


class Archive:
    """A bucket with signed manifests of every sample, and the keys to check them."""

    def __init__(self, seaweed: SeaweedFS, root: Path) -> None:
        self.root = root
        self.bucket = seaweed.new_bucket(object_lock=True)
        self.manifest_key, self.manifest_public = manifest_key_pair(root / "manifests")
        self.producer_key, self.producer_public = manifest_key_pair(root / "producer")
        sidecar = s3_sidecar(
            self.bucket, seaweed.endpoint, seaweed.env,
            f"--manifests-dir={root / 'journal'}", f"--manifest-signing-key={self.manifest_key}",
        )  # fmt: skip
        try:
            with ArchiveClient(sidecar.address) as client:
                self.keys = {
                    name: client.archive(make()).key for name, make in samples.REQUESTS.items()
                }
        finally:
            assert sidecar.stop() == 0
        self.env = dict(seaweed.env)
        self.endpoint = seaweed.endpoint
        self.s3 = seaweed.client()
        self.flags = [
            f"--store=s3://{self.bucket}",
            f"--s3-endpoint-url={seaweed.endpoint}",
            f"--cache-dir={root / 'cache'}",
            f"--signing-key={self.producer_key}",
            f"--manifest-key={self.manifest_public}",
        ]

    def export(self, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return msgarchive("export", str(out), *self.flags, *args, env=self.env)

    def check(
        self, production: Path, public: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return msgarchive(
            "check-production", str(production),
            f"--public-key={public or self.producer_public}",
            f"--manifest-key={self.manifest_public}",
        )  # fmt: skip


@pytest.fixture(scope="module")
def archive(seaweed: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Archive:
    root = tmp_path_factory.mktemp("export")
    for name in ("manifests", "producer"):
        (root / name).mkdir()
    return Archive(seaweed, root)


def test_a_production_holds_every_copy_and_checks(archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "production"
    made = archive.export(out)
    assert made.returncode == 0, made.stderr
    assert "produced 4 copies (4 with proofs)" in made.stderr
    manifest = json.loads((out / "production.json").read_text())
    assert manifest["counts"] == {
        "items": 4, "proven": 4, "by_channel": {"push": 1, "email": 1, "sms": 1, "whatsapp": 1}
    }  # fmt: skip
    assert {item["key"] for item in manifest["items"]} == set(archive.keys.values())
    for item in manifest["items"]:
        native = (out / item["native"]).read_bytes()
        assert hashlib.sha256(native).hexdigest() == item["sha256"]  # the stored bytes
    checked = archive.check(out)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "the production checks" in checked.stdout


def test_each_format_reads_in_an_independent_reader(archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "production"
    assert archive.export(out).returncode == 0
    items = {i["channel"]: i for i in json.loads((out / "production.json").read_text())["items"]}
    folder = out / items["email"]["native"].rsplit("/", 1)[0]
    message = email.message_from_bytes(
        (folder / "message.eml").read_bytes(), policy=email.policy.default
    )
    copy = json.loads((folder / "copy.json").read_text())
    assert message["Subject"] == copy["subject"]
    assert message["To"] == copy["to"]
    assert copy["from_address"] in message["From"]
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    # MIME text ends in a line break, written CRLF: the body is otherwise the copy's.
    html_part, plain_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None
    assert plain_part is not None
    assert html_part.get_content().rstrip("\r\n") == copy["html_body"]
    assert plain_part.get_content().rstrip("\r\n") == copy["plaintext_body"]
    rows = list(csv.DictReader(io.StringIO((out / "loadfile.csv").read_text())))
    assert [row["ControlNumber"] for row in rows] == ["MSG000001", "MSG000002", "MSG000003",
                                                      "MSG000004"]  # fmt: skip
    assert {row["Key"] for row in rows} == set(archive.keys.values())
    dat = (out / "loadfile.dat").read_bytes().decode("utf-8").split("\r\n")
    header = [field.strip("\u00fe") for field in dat[0].split("\x14")]
    assert header == list(rows[0])
    first = dict(zip(header, [f.strip("\u00fe") for f in dat[1].split("\x14")], strict=True))
    assert first == rows[0]
    for page in [out / "index.html", *out.glob("items/*/page.html")]:
        text = page.read_text()
        assert "Content-Security-Policy" in text
        assert "default-src 'none'" in text
        assert "<script" not in text.lower()
    assert "<img" not in (folder / "page.html").read_text()  # the HTML body is shown as text


def test_a_zip_made_twice_is_the_same_bytes(archive: Archive, tmp_path: Path) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    assert archive.export(first, "--zip").returncode == 0
    assert archive.export(second, "--zip").returncode == 0
    assert first.read_bytes() == second.read_bytes()
    assert zipfile.ZipFile(first).testzip() is None
    assert archive.check(first).returncode == 0


def test_a_search_selects_what_is_produced(archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "person"
    made = archive.export(out, f"--recipient={NUMBER}")
    assert made.returncode == 0, made.stderr
    manifest = json.loads((out / "production.json").read_text())
    assert {i["key"] for i in manifest["items"]} == {archive.keys["sms"], archive.keys["whatsapp"]}
    assert NUMBER not in (out / "production.json").read_text()  # hashed in the selection
    assert manifest["selection"]["filters"]["recipient_user_hashes"]


def test_tampering_is_named_file_by_file(archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "production"
    assert archive.export(out).returncode == 0
    native = next(out.glob("items/MSG000001/native.json.lz4"))
    native.write_bytes(native.read_bytes()[:-1] + b"\x00")
    (out / "items" / "MSG000002" / "text.txt").unlink()
    (out / "extra.txt").write_text("slipped in")
    checked = archive.check(out)
    assert checked.returncode == 1
    lines = checked.stdout.splitlines()
    assert any(line.startswith("changed") and "MSG000001/native.json.lz4" in line for line in lines)
    assert any(line.startswith("removed") and "MSG000002/text.txt" in line for line in lines)
    assert any(line.startswith("added") and "extra.txt" in line for line in lines)


def test_another_producers_key_does_not_check(archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "production"
    assert archive.export(out).returncode == 0
    checked = archive.check(out, public=archive.manifest_public)
    assert checked.returncode == 1
    assert checked.stdout.startswith("unsigned")


def test_refusals_are_one_line_and_write_nothing(archive: Archive, tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    made = archive.export(full)
    assert made.returncode == 2
    assert "exists and is not an empty directory" in made.stderr
    assert sorted(p.name for p in full.iterdir()) == ["keep.txt"]
    bad = archive.export(tmp_path / "bad", "--channel=sms", "--recipient=not-a-number")
    assert bad.returncode == 2
    assert "recipient must be a phone number" in bad.stderr
    assert not (tmp_path / "bad").exists()
    assert not (tmp_path / "bad.partial").exists()


def test_copies_no_manifest_lists_are_produced_but_unproven(tmp_path: Path) -> None:
    producer, public = manifest_key_pair(tmp_path)
    store = tmp_path / "archive"
    sidecar = SidecarProcess(["--listen=127.0.0.1:0", f"--store={store}"]).start()
    with ArchiveClient(sidecar.address) as client:
        client.archive(samples.sms_request())
    sidecar.stop()
    out = tmp_path / "production"
    made = msgarchive(
        "export", str(out), f"--store={store}", f"--cache-dir={tmp_path / 'c'}",
        f"--signing-key={producer}",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "produced 1 copies (0 with proofs)" in made.stderr
    checked = msgarchive(
        "check-production", str(out), f"--public-key={public}", f"--manifest-key={public}"
    )
    assert checked.returncode == 1
    assert checked.stdout.startswith("unproven   MSG000001")


def test_text_messages_are_also_rsmf_conversations(archive: Archive, tmp_path: Path) -> None:
    out = tmp_path / "production"
    assert archive.export(out).returncode == 0
    names = sorted(p.name for p in (out / "conversations").iterdir())
    assert len(names) == 2  # the SMS and the WhatsApp sample: two channels, one day
    assert all(n.startswith(("sms-15555555555-", "whatsapp-15555555555-")) for n in names)
    wrapper = email.message_from_bytes(
        (out / "conversations" / names[0]).read_bytes(), policy=email.policy.default
    )
    assert wrapper["X-RSMF-Version"] == "2.0.0"
    (attachment,) = list(wrapper.iter_attachments())
    with zipfile.ZipFile(io.BytesIO(attachment.get_content())) as packed:
        events = json.loads(packed.read("rsmf_manifest.json"))["events"]
    keys = {c["value"] for e in events for c in e["custom"] if c["name"] == "Archive Key"}
    assert keys <= {archive.keys["sms"], archive.keys["whatsapp"]}
    assert len(keys) == 1


def test_every_export_is_recorded_in_a_signed_chain_that_verify_checks(
    archive: Archive, tmp_path: Path
) -> None:
    made = archive.export(tmp_path / "one", "--handed-to=Regulator X, case 7")
    assert made.returncode == 0, made.stderr
    assert "recorded as _msgarchive/exports/" in made.stderr
    assert archive.export(tmp_path / "two", "--channel=email").returncode == 0
    listed = archive.s3.list_objects_v2(Bucket=archive.bucket, Prefix="_msgarchive/exports/")
    keys = [item["Key"] for item in listed["Contents"]]
    assert len(keys) >= 2
    records = [json.loads(archive.s3.get_object(Bucket=archive.bucket, Key=k)["Body"].read())
               for k in keys]  # fmt: skip
    production = (tmp_path / "one" / "production.json").read_bytes()
    ours = [r for r in records if r["handed_to"] == "Regulator X, case 7"]
    assert [r["production_sha256"] for r in ours] == [hashlib.sha256(production).hexdigest()]
    assert ours[0]["items"] == 4

    def verify_exports() -> subprocess.CompletedProcess[str]:
        return msgarchive(
            "verify", f"s3://{archive.bucket}", f"--public-key={archive.manifest_public}",
            f"--exports-key={archive.producer_public}", f"--s3-endpoint-url={archive.endpoint}",
            "--json", env=archive.env,
        )  # fmt: skip

    clean = verify_exports()
    assert (clean.returncode, clean.stdout) == (0, ""), clean.stdout + clean.stderr
    # A record rewritten (as a new version: the bucket keeps the old one) no longer verifies.
    edited = dict(ours[0], handed_to="nobody")
    key = keys[records.index(ours[0])]
    archive.s3.put_object(Bucket=archive.bucket, Key=key, Body=json.dumps(edited).encode())
    broken = verify_exports()
    assert broken.returncode == 1
    findings = [json.loads(line) for line in broken.stdout.splitlines()]
    assert {"kind": "export_log_broken", "key": key, "detail": "its signature does not verify"} in (
        findings
    )


STATEMENTS = """
controller = "Acme Ltd <privacy@acme.example>"
purposes = ["Sending the campaigns you subscribed to"]
categories = ["Your phone number", "The messages sent to you"]
recipients = ["Our SMS provider"]
retention = "Seven years from sending"
rights = ["Rectification", "Restriction", "A complaint to the supervisory authority"]
"""


def test_a_person_gets_their_copies_with_a_cover_from_the_controllers_words(
    archive: Archive, tmp_path: Path
) -> None:
    statements = tmp_path / "subject-access.toml"
    statements.write_text(STATEMENTS)
    out = tmp_path / "dsar"
    made = archive.export(out, f"--recipient={NUMBER}", f"--subject-access={statements}")
    assert made.returncode == 0, made.stderr
    cover = (out / "cover.html").read_text()
    assert "This production holds 2 messages" in cover
    assert "Acme Ltd &lt;privacy@acme.example&gt;" in cover  # escaped, as all of it
    assert "<li>A complaint to the supervisory authority</li>" in cover
    assert "default-src 'none'" in cover
    assert "cover.html" in json.loads((out / "production.json").read_text())["files"]
    assert archive.check(out).returncode == 0
    statements.write_text('controller = "Acme"\n')
    bad = archive.export(
        tmp_path / "bad", f"--recipient={NUMBER}", f"--subject-access={statements}"
    )
    assert bad.returncode == 2
    assert "purposes, categories, recipients, retention, rights required" in bad.stderr
    assert not (tmp_path / "bad").exists()
    nobody = archive.export(tmp_path / "nobody", f"--subject-access={statements}")
    assert nobody.returncode == 2
    assert "--subject-access needs --recipient" in nobody.stderr
