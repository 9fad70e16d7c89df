"""The log over heads: RFC 6962 consistency proofs and roots, checked by the
test witness's verifier (tests/witness.py, from RFC 9162 2.1.4.2), apart from merkle.py;
signed notes and checkpoints, read back and verified."""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from msgarchive_server.domain.manifests import merkle, notes
from msgarchive_server.domain.manifests.headlog import HeadLog, checkpoint_key
from tests.witness import consistent


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"head {i}".encode()) for i in range(n)]


def test_every_consistency_proof_checks_and_a_wrong_one_does_not() -> None:
    all_leaves = leaves(40)
    tree = merkle.Tree(all_leaves)
    for new in range(1, 41):
        new_root = merkle.root(all_leaves[:new])
        for old in range(0, new + 1):
            proof = tree.consistency(old, new)
            old_root = merkle.root(all_leaves[:old])
            assert consistent(old, new, proof, old_root, new_root), (old, new)
            if 0 < old < new:
                assert not consistent(old, new, proof, merkle.leaf_hash(b"x"), new_root)
                bent = [proof[0][::-1], *proof[1:]]
                assert not consistent(old, new, bent, old_root, new_root)


def test_the_frontier_gives_the_merkle_tree_hash_at_every_size() -> None:
    all_leaves = leaves(70)
    frontier = merkle.Frontier()
    assert frontier.root() == merkle.EMPTY_ROOT
    for n, leaf in enumerate(all_leaves, start=1):
        frontier.append(leaf)
        assert frontier.root() == merkle.root(all_leaves[:n])
    assert frontier.size == 70


def test_the_log_appends_each_head_once_and_is_read_back(tmp_path: Path) -> None:
    log = HeadLog(tmp_path / "log.txt")
    assert log.append("a/head.json", b"A") == 1
    assert log.append("a/head.json", b"A") == 1  # after a crash: not twice
    assert log.append("b/head.json", b"B") == 2
    again = HeadLog(tmp_path / "log.txt")
    assert again.keys == ["a/head.json", "b/head.json"]
    assert again.root() == merkle.root([merkle.leaf_hash(b"A"), merkle.leaf_hash(b"B")])
    assert checkpoint_key("p/_msgarchive/manifests/w/2026/12/01/00/head.2.json") == (
        "p/_msgarchive/manifests/w/2026/12/01/00/checkpoint.2.txt"
    )


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_a_checkpoint_is_a_signed_note_that_verifies_only_under_its_key() -> None:
    key = Ed25519PrivateKey.generate()
    origin = "bucket/acme/_msgarchive/manifests/pod-1"
    text = notes.Checkpoint(origin, 7, bytes(range(32))).text()
    assert text == f"{origin}\n7\n{base64.b64encode(bytes(range(32))).decode()}\n"
    note = notes.sign(text, origin, raw(key), key.sign)
    written = str(note)
    assert written.startswith(text + "\n\u2014 " + origin + " ")
    read = notes.parse(written)
    verifier = notes.parse_vkey(notes.vkey(origin, notes.ED25519, raw(key)))
    assert notes.verified(read, verifier) is not None
    assert notes.checkpoint_of(read) == notes.Checkpoint(origin, 7, bytes(range(32)))
    other = notes.Verifier(origin, notes.ED25519, raw(Ed25519PrivateKey.generate()))
    assert notes.verified(read, other) is None  # another key's ID: no signature of it
    forged = notes.parse(written.replace("\n7\n", "\n8\n"))
    with pytest.raises(notes.NoteError, match="does not verify"):
        notes.verified(forged, verifier)


def test_a_cosignature_signs_its_time_and_the_checkpoint() -> None:
    witness = Ed25519PrivateKey.generate()
    text = notes.Checkpoint("log.example/a", 3, bytes(32)).text()
    when = 1_796_000_000
    message = f"cosignature/v1\ntime {when}\n{text}".encode()
    name = "witness.example/w1"
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + raw(witness)).digest()[:4]
    line = base64.b64encode(key_id + struct.pack(">Q", when) + witness.sign(message)).decode()
    note = notes.parse(f"{text}\n\u2014 {name} {line}\n")
    verifier = notes.parse_vkey(notes.vkey(name, notes.COSIGNATURE_V1, raw(witness)))
    signature = notes.verified(note, verifier)
    assert signature is not None
    assert notes.cosignature_time(signature) == when


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("no blank line\n\u2014 a AAAAAAA=\n", "a blank line"),
        ("text\n\nnot a signature\n", "not a signature line"),
        ("text\n\n\u2014 a !!!\n", "not base64"),
        ("te\x07xt\n\n\u2014 a AAAAAAA=\n", "control characters"),
    ],
)
def test_malformed_notes_are_refused(text: str, says: str) -> None:
    with pytest.raises(notes.NoteError, match=says):
        notes.parse(text)


@pytest.mark.parametrize(
    "vkey", ["nameonly", "a+zz+AQ==", "a+00000000+AQID", "a+00000000+" + "A" * 44]
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(notes.NoteError):
        notes.parse_vkey(vkey)
