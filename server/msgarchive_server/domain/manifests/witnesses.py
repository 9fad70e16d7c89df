"""Witnesses: others who cosign each checkpoint only if it extends the last one they saw.

After writing a head's checkpoint, the sealer submits it to every configured
witness under the C2SP tlog-witness protocol (`POST <url>/add-checkpoint`:
`old <size>`, the RFC 6962 consistency proof from that size, a blank line,
the checkpoint). A witness that answers 200 returns cosignatures
(c2sp.org/tlog-cosignature); those that verify under its key are kept. One
that answers 409 with the size it last cosigned gets the same checkpoint
again with a proof from that size, once. The checkpoint and every cosignature
it got are then stored beside the head as one signed note,
`checkpoint[.N].cosigned.txt`, written once.

Archiving never waits on a witness: the sealer runs apart from the calls, a
witness gets `timeout` seconds, and a witness that refuses or does not answer
is logged (`witness refused`) and counted; at the next seal it is sent the
newer checkpoint with a proof from the size it last cosigned, which covers
the hours it missed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from msgarchive_server.domain.manifests import merkle, notes

log = structlog.get_logger("msgarchive.manifests")

SIZE_TYPE = "text/x.tlog.size"


class WitnessError(Exception):
    """A witness did not cosign; the message says what it answered."""


@dataclass(frozen=True, slots=True)
class Witness:
    url: str  # the submission prefix: <url>/add-checkpoint
    key: notes.Verifier  # its cosignature key (type 0x04)

    @property
    def name(self) -> str:
        return self.key.name


def parse_witness(text: str) -> Witness:
    """`URL=VKEY`, as --witness gives it; ValueError naming what is wrong."""
    url, equals, vkey = text.strip().partition("=")
    if not equals or not url.startswith(("http://", "https://")):
        raise ValueError(f"{text!r}: a witness is URL=VKEY, with an http(s) URL")
    try:
        key = notes.parse_vkey(vkey)
    except notes.NoteError as err:
        raise ValueError(str(err)) from None
    if key.kind != notes.COSIGNATURE_V1:
        raise ValueError(f"{text!r}: a witness key is a cosignature key (type 0x04)")
    return Witness(url.rstrip("/"), key)


Post = Callable[[str, bytes, float], tuple[int, str, bytes]]  # url, body, timeout


def http_post(
    url: str, body: bytes, timeout: float, content_type: str = "text/plain; charset=utf-8"
) -> tuple[int, str, bytes]:
    """POST `body`: (status, content type, answer); OSError when nothing answered."""
    request = urllib.request.Request(  # noqa: S310 (the operator's configured URL)
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return answer.status, answer.headers.get("Content-Type", ""), answer.read(65536)
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read(65536)


class Witnesses:
    """The configured witnesses of one writer's log, and the size each last cosigned
    (kept in `state`, a JSON file in the journal's directory)."""

    def __init__(
        self, witnesses: list[Witness], state: Path, post: Post = http_post, timeout: float = 5.0
    ) -> None:
        self.witnesses = witnesses
        self.state = state
        self.post = post
        self.timeout = timeout
        try:
            self.sizes: dict[str, int] = json.loads(state.read_text())
        except (FileNotFoundError, ValueError):
            self.sizes = {}

    def cosign(
        self, checkpoint: notes.Note, tree: merkle.Tree
    ) -> tuple[list[notes.Signature], dict[str, str]]:
        """Ask every witness to cosign `checkpoint` (the log's newest, whose
        leaves `tree` holds): the cosignatures got, and why each other witness
        gave none."""
        got: list[notes.Signature] = []
        refused: dict[str, str] = {}
        for witness in self.witnesses:
            try:
                got.append(self._ask(witness, checkpoint, tree))
            except WitnessError as err:
                refused[witness.name] = str(err)
        self._save()
        return got, refused

    def _ask(self, witness: Witness, checkpoint: notes.Note, tree: merkle.Tree) -> notes.Signature:
        size = len(tree.leaves)
        old = min(self.sizes.get(witness.name, 0), size)
        for _ in range(2):  # once more after a 409 that says where the witness is
            proof = tree.consistency(old, size) if old else []
            body = f"old {old}\n" + "".join(f"{_b64(h)}\n" for h in proof) + "\n" + str(checkpoint)
            try:
                status, kind, answer = self.post(
                    f"{witness.url}/add-checkpoint", body.encode(), self.timeout
                )
            except OSError as err:
                raise WitnessError(f"did not answer: {err}") from None
            if status == 409 and kind.split(";")[0].strip() == SIZE_TYPE:
                known = _size(answer)
                if known is None or known > size or known == old:
                    raise WitnessError(f"409: it has cosigned another tree (size {known})")
                old = known
                continue
            if status != 200:
                detail = answer.decode("utf-8", "replace").strip()[:200]
                raise WitnessError(f"{status}: {detail or 'no reason given'}")
            return self._cosignature(witness, checkpoint, answer, size)
        raise WitnessError("409 twice: it keeps another tree")

    def _cosignature(
        self, witness: Witness, checkpoint: notes.Note, answer: bytes, size: int
    ) -> notes.Signature:
        try:
            lines = notes.parse(checkpoint.text + "\n" + answer.decode()).signatures
            cosigned = notes.Note(checkpoint.text, lines)
            signature = notes.verified(cosigned, witness.key)
        except (notes.NoteError, UnicodeDecodeError) as err:
            raise WitnessError(f"200, but not a cosignature of its key: {err}") from None
        if signature is None:
            raise WitnessError("200, but no cosignature of its key")
        self.sizes[witness.name] = size
        return signature

    def _save(self) -> None:
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.sizes, sort_keys=True))
        tmp.replace(self.state)


def cosigned_key(checkpoint_key: str) -> str:
    return checkpoint_key.removesuffix(".txt") + ".cosigned.txt"


def _size(answer: bytes) -> int | None:
    text = answer.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _b64(digest: bytes) -> str:
    import base64

    return base64.b64encode(digest).decode()
