"""A time-stamping authority for the tests: OpenSSL's own (`openssl ts -reply`)
behind a small HTTP handler on loopback, with a CA and a time-stamping
certificate made for it. It shares no code with the sealer: a token it gives
is OpenSSL's, and `openssl ts -verify` checks what the sealer stored.

`mode` makes it misbehave: "error" (500), "garbage" (200 with bytes that are
no reply), "rejection" (OpenSSL's own refusal: the query is given a policy
the TSA does not accept), "other bytes" (a good token over another digest),
"replay" (the last token it gave, again: for another request's nonce),
"slow" (answers only once `release` is set, after the client gave up).
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import subprocess
import tempfile
import threading
from pathlib import Path

from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CONFIG = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(
    directory: Path,
    name: str = "msgarchive test",
    time_stamping: bool = True,
    expired: bool = False,
) -> Path:
    """A CA and a time-stamping certificate it issued, in `directory`: ca.pem,
    tsa.pem, tsa.key and OpenSSL's TSA configuration (tsa.cnf). The CA's file.
    Without `time_stamping`, the TSA's certificate is for TLS clients instead;
    `expired`: it ended yesterday."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} CA"))
        .issuer_name(_name(f"{name} CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} TSA"))
        .issuer_name(ca.subject)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=10 if expired else 1))
        .not_valid_after(
            now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=30)
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [
                    ExtendedKeyUsageOID.TIME_STAMPING
                    if time_stamping
                    else ExtendedKeyUsageOID.CLIENT_AUTH
                ]
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "tsa.pem").write_bytes(tsa.public_bytes(pem))
    (directory / "tsa.key").write_bytes(
        tsa_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / "serial").write_text("01\n")
    (directory / "tsa.cnf").write_text(CONFIG.format(dir=directory))
    return directory / "ca.pem"


class LoopbackTSA:
    """OpenSSL's TSA at `url` (POST a TimeStampReq, get a TimeStampResp)."""

    def __init__(self, directory: Path | None = None, mode: str = "") -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="msgarchive-tsa-")
        self.directory = directory or Path(self._scratch.name) / "pki"
        if not (self.directory / "tsa.cnf").exists():
            make_pki(self.directory)
        self.ca = self.directory / "ca.pem"
        self.mode = mode
        self.release = threading.Event()
        self.answered = 0  # tokens given
        self._last: bytes | None = None  # for "replay"
        self._lock = threading.Lock()
        tsa = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, kind, reply = tsa.answer(body)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def answer(self, query: bytes) -> tuple[int, str, bytes]:
        if self.mode == "error":
            return 500, "text/plain", b"the signing module is offline"
        if self.mode == "garbage":
            return 200, "application/timestamp-reply", b"\x30\x03not a reply at all"
        if self.mode == "slow":
            self.release.wait(60)
        if self.mode == "replay" and self._last is not None:
            return 200, "application/timestamp-reply", self._last
        if self.mode in ("rejection", "other bytes"):
            parsed = tsp.TimeStampReq.load(query)
            fields = dict(parsed.native)
            if self.mode == "rejection":
                fields["req_policy"] = "1.3.6.1.4.1.99999.7"  # not one it accepts
            else:
                fields["message_imprint"] = {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": hashlib.sha256(b"other bytes").digest(),
                }
            query = tsp.TimeStampReq(fields).dump()
        reply = self._last = self.reply(query)
        return 200, "application/timestamp-reply", reply

    def reply(self, query: bytes) -> bytes:
        """OpenSSL's reply to `query`."""
        with self._lock, tempfile.TemporaryDirectory() as scratch:
            asked, replied = Path(scratch) / "query.tsq", Path(scratch) / "reply.tsr"
            asked.write_bytes(query)
            subprocess.run(
                ["openssl", "ts", "-reply", "-config", str(self.directory / "tsa.cnf"),
                 "-queryfile", str(asked), "-out", str(replied)],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            self.answered += 1
            return replied.read_bytes()

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._scratch.cleanup()


def openssl_verify(data: Path, reply: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    """`openssl ts -verify` of a stored reply over `data`, trusting `ca` alone."""
    return subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(data), "-in", str(reply), "-CAfile", str(ca)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
