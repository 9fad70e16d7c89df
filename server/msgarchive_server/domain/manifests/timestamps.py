"""Trusted time: an RFC 3161 timestamp token over each checkpoint.

With `--timestamp-url`, the sealer asks a time-stamping authority (TSA) for a
token over each checkpoint it writes (a `TimeStampReq` over the checkpoint's
SHA-256, with a nonce, asking for the TSA's certificate) and stores the TSA's
whole answer, a DER `TimeStampResp`, beside it as `checkpoint[.N].tsr`,
written once: what `openssl ts -reply` writes and `openssl ts -verify -in`
reads.

A token proves that the checkpoint's exact bytes existed at the token's time
(`genTime`), on the TSA's word. A checkpoint commits to every head before it,
so a token also dates every earlier hour: a chain rebuilt later cannot carry
the tokens of the one it replaced (they are over other bytes), and tokens got
for the rebuilt checkpoints are as late as the rebuild.

Archiving never waits on the TSA: the sealer asks it after the checkpoint is
stored, gives it `timeout` seconds, and a TSA that refuses or does not answer
is logged (`timestamp refused`) and counted; the next seal's checkpoint, with
its token, covers the hour that got none.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from asn1crypto import cms, core, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from msgarchive_server.domain.manifests.witnesses import Post, http_post

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"

_DIGESTS: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class _Reply(core.Sequence):  # type: ignore[misc]
    """TimeStampResp as RFC 3161 §2.4.2 has it: a refusal carries no token
    (asn1crypto's own TimeStampResp requires one)."""

    _fields = [  # noqa: RUF012 (asn1crypto's spec)
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class TimestampError(Exception):
    """A token is missing, refused or does not check; the message says why."""


@dataclass(frozen=True, slots=True)
class Token:
    """What a checked token says."""

    time: datetime.datetime  # genTime, UTC
    serial: int
    tsa: str  # the signing certificate's subject


def timestamp_key(checkpoint_key: str) -> str:
    """The key of a checkpoint's token: `checkpoint[.N].tsr` beside it."""
    return checkpoint_key.removesuffix(".txt") + ".tsr"


def request(data: bytes, nonce: int) -> bytes:
    """A DER TimeStampReq over `data`'s SHA-256, asking for the TSA's certificate."""
    query: bytes = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": hashlib.sha256(data).digest(),
            },
            "nonce": nonce,
            "cert_req": True,
        }
    ).dump()
    return query


def read_reply(
    reply: bytes,
    data: bytes,
    *,
    nonce: int | None = None,
    roots: Sequence[x509.Certificate] | None = None,
) -> Token:
    """The token in a TSA's `reply`, checked: granted, over `data` (and answering
    `nonce`), and signed with the key of the certificate it carries. With
    `roots`, that certificate must also be a time-stamping certificate that
    chains to one of them, every certificate on the way valid at the token's
    time. TimestampError naming the first thing wrong."""
    try:
        return _read(reply, data, nonce, roots)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        # asn1crypto parses lazily: malformed DER surfaces wherever it is read.
        raise TimestampError(f"not a timestamp reply: {err}") from None


def _read(
    reply: bytes, data: bytes, nonce: int | None, roots: Sequence[x509.Certificate] | None
) -> Token:
    response = _Reply.load(reply, strict=True)
    status = response["status"]
    if status["status"].native not in ("granted", "granted_with_mods"):
        said = "; ".join(status["status_string"].native or [])
        failed = ", ".join(sorted(status["fail_info"].native or []))
        detail = ": ".join(part for part in (said, failed) if part)
        raise TimestampError(f"the TSA refused ({status['status'].native}): {detail or '-'}")
    token = response["time_stamp_token"]
    if token.native is None or token["content_type"].native != "signed_data":
        raise TimestampError("the reply carries no token")
    signed = token["content"]
    encapsulated = signed["encap_content_info"]
    if encapsulated["content_type"].native != "tst_info":
        raise TimestampError("the token signs something other than a TSTInfo")
    content = encapsulated["content"]
    info = content.parse(tsp.TSTInfo)
    imprint = info["message_imprint"]
    algorithm = imprint["hash_algorithm"]["algorithm"].native
    if algorithm not in _DIGESTS:
        raise TimestampError(f"the token's imprint is a {algorithm} digest")
    if imprint["hashed_message"].native != hashlib.new(algorithm, data).digest():
        raise TimestampError("the token is over other bytes than the checkpoint")
    if nonce is not None and info["nonce"].native != nonce:
        raise TimestampError("the token answers another request (its nonce differs)")
    time = info["gen_time"].native
    certificates = [
        x509.load_der_x509_certificate(choice.chosen.dump())
        for choice in signed["certificates"] or []
        if choice.name == "certificate"
    ]
    if len(signed["signer_infos"]) != 1:
        raise TimestampError("the token has more or fewer than one signature")
    signer = signed["signer_infos"][0]
    certificate = _signing_certificate(signer["sid"], certificates)
    _check_signed_attributes(signer, content.contents, certificate)
    _check_signature(signer, certificate)
    if roots is not None:
        _check_chain(certificate, certificates, roots, time)
    return Token(time, int(info["serial_number"].native), certificate.subject.rfc4514_string())


def _signing_certificate(
    sid: cms.SignerIdentifier, certificates: list[x509.Certificate]
) -> x509.Certificate:
    for certificate in certificates:
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (
                certificate.serial_number == wanted["serial_number"].native
                and certificate.issuer.public_bytes() == wanted["issuer"].dump()
            ):
                return certificate
        elif sid.name == "subject_key_identifier":
            try:
                ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                continue
            if ski.value.digest == sid.chosen.native:
                return certificate
    raise TimestampError("the token does not carry the certificate that signed it")


def _check_signed_attributes(
    signer: cms.SignerInfo, content: bytes, certificate: x509.Certificate
) -> None:
    attributes = {a["type"].native: a["values"][0] for a in signer["signed_attrs"] or []}
    if "content_type" not in attributes or "message_digest" not in attributes:
        raise TimestampError("the signature covers no content type and digest")
    if attributes["content_type"].native != "tst_info":
        raise TimestampError("the signature is over another content type")
    digest = signer["digest_algorithm"]["algorithm"].native
    if digest not in _DIGESTS:
        raise TimestampError(f"the signature's digest is {digest}")
    if attributes["message_digest"].native != hashlib.new(digest, content).digest():
        raise TimestampError("the signed digest is not the TSTInfo's")
    # RFC 3161 §2.4.1 / RFC 5816: the signature names the certificate it was made with.
    named = attributes.get("signing_certificate_v2")
    if named is not None:
        first = named["certs"][0]
        algorithm = first["hash_algorithm"]["algorithm"].native
        expected = hashlib.new(algorithm, certificate.public_bytes(Encoding.DER)).digest()
    else:
        named = attributes.get("signing_certificate")
        if named is None:
            raise TimestampError("the signature does not name its certificate (ESS)")
        first = named["certs"][0]
        der = certificate.public_bytes(Encoding.DER)
        expected = hashlib.sha1(der, usedforsecurity=False).digest()
    if first["cert_hash"].native != expected:
        raise TimestampError("the signature names another certificate than the one it carries")


def _check_signature(signer: cms.SignerInfo, certificate: x509.Certificate) -> None:
    # The signature is over the DER of the signed attributes as a SET (tag 0x31),
    # not as the implicitly tagged [0] they are encoded with.
    signed_bytes = b"\x31" + signer["signed_attrs"].dump()[1:]
    signature = signer["signature"].native
    algorithm = signer["signature_algorithm"]
    digest = _DIGESTS.get(signer["digest_algorithm"]["algorithm"].native, hashes.SHA256)()
    key = certificate.public_key()
    try:
        match algorithm.signature_algo:
            case "rsassa_pkcs1v15" if isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, signed_bytes, padding.PKCS1v15(), digest)
            case "rsassa_pss" if isinstance(key, rsa.RSAPublicKey):
                pss = padding.PSS(padding.MGF1(digest), padding.PSS.AUTO)
                key.verify(signature, signed_bytes, pss, digest)
            case "ecdsa" if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, signed_bytes, ec.ECDSA(digest))
            case "ed25519" if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, signed_bytes)
            case other:
                raise TimestampError(f"the token is signed with {other}, which is not checked")
    except InvalidSignature:
        raise TimestampError("the TSA's signature does not verify") from None


def _check_chain(
    certificate: x509.Certificate,
    carried: list[x509.Certificate],
    roots: Sequence[x509.Certificate],
    time: datetime.datetime,
) -> None:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or ExtendedKeyUsageOID.TIME_STAMPING not in usage.value:
        raise TimestampError("it is not signed with a time-stamping certificate")
    trusted = {root.fingerprint(hashes.SHA256()) for root in roots}
    current = certificate
    for _ in range(8):
        if not current.not_valid_before_utc <= time <= current.not_valid_after_utc:
            raise TimestampError(f"{current.subject.rfc4514_string()} is not valid at {time}")
        if current.fingerprint(hashes.SHA256()) in trusted:
            return
        current = _issuer(current, [*roots, *carried])
    raise TimestampError("its certificate chain is longer than 8")


def _issuer(certificate: x509.Certificate, candidates: list[x509.Certificate]) -> x509.Certificate:
    for candidate in candidates:
        if candidate.subject != certificate.issuer or candidate == certificate:
            continue
        try:
            certificate.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    raise TimestampError(
        f"its certificate ({certificate.subject.rfc4514_string()}) does not chain to --tsa-ca"
    )


def load_roots(pem: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM bundle (ValueError when it holds none)."""
    roots = x509.load_pem_x509_certificates(pem)
    if not roots:
        raise ValueError("no certificate in it")
    return roots


class Timestamper:
    """The TSA at `url`, asked for a token over each checkpoint."""

    def __init__(self, url: str, post: Post | None = None, timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r}: a time-stamping authority is an http(s) URL")
        self.url = url
        self.post = post or functools.partial(http_post, content_type=QUERY_TYPE)
        self.timeout = timeout

    def stamp(self, data: bytes) -> tuple[bytes, Token]:
        """The TSA's reply over `data`, checked (TimestampError when there is none)."""
        nonce = secrets.randbits(63)
        try:
            status, _, reply = self.post(self.url, request(data, nonce), self.timeout)
        except OSError as err:
            raise TimestampError(f"did not answer: {err}") from None
        if status != 200:
            detail = reply.decode("utf-8", "replace").strip()[:200]
            raise TimestampError(f"{status}: {detail or 'no reason given'}")
        return reply, read_reply(reply, data, nonce=nonce)
