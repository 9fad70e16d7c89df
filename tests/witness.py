"""A transparency-log witness for the tests, written from the C2SP specs
(tlog-witness, tlog-cosignature, signed-note) and RFC 9162, sharing no code
with the sealer: an HTTP server on loopback that cosigns a checkpoint only if
it is signed by the log's key and consistent with the last one it cosigned.

`mode` makes it misbehave: "forbidden" (403), "unprocessable" (422),
"garbage" (200 with no cosignature), "another tree" (409 naming the size it
was given: it holds another tree of that size), "slow" (answers only once
`release` is set, after the client gave up).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import struct
import threading
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def consistent(old: int, new: int, proof: list[bytes], old_root: bytes, new_root: bytes) -> bool:
    """An RFC 6962 consistency proof checked as RFC 9162, 2.1.4.2 writes it."""
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof
    if old > new or not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class LoopbackWitness:
    def __init__(self, name: str, log_origin: str, log_key: Ed25519PublicKey) -> None:
        self.name = name
        self.key = Ed25519PrivateKey.generate()
        self.log_origin = log_origin
        self.log_key = log_key
        self.latest: tuple[int, bytes] = (0, b"")  # the size and root it last cosigned
        self.mode = "ok"
        self.requests: list[str] = []  # each answer's status, in order
        self.release = threading.Event()
        self._lock = threading.Lock()
        witness = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, kind, answer = witness.add_checkpoint(self.path, body)
                witness.requests.append(str(status))
                if witness.mode == "slow":
                    witness.release.wait(60)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(
            self.name.encode() + b"\n\x04" + _raw(self.key.public_key())
        ).digest()[:4]

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(b"\x04" + _raw(self.key.public_key())).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def add_checkpoint(self, path: str, body: bytes) -> tuple[int, str, bytes]:
        plain = "text/plain; charset=utf-8"
        if path != "/add-checkpoint":
            return 404, plain, b"no such endpoint\n"
        if self.mode == "forbidden":
            return 403, plain, b"not a log this witness follows\n"
        if self.mode == "unprocessable":
            return 422, plain, b"the consistency proof does not verify\n"
        if self.mode == "garbage":
            return 200, plain, b"\x00\xffnot a signature line\n"
        text = body.decode()
        head, _, note = text.partition("\n\n")
        lines = head.split("\n")
        if not lines[0].startswith("old "):
            return 400, plain, b"no old size line\n"
        old = int(lines[0][4:])
        proof = [base64.b64decode(line) for line in lines[1:]]
        checkpoint, _, signatures = note.rpartition("\n\n")
        checkpoint += "\n"
        origin, size_text, root_text = checkpoint.split("\n")[:3]
        if origin != self.log_origin:
            return 404, plain, b"unknown log\n"
        if not self._signed_by_log(checkpoint, signatures):
            return 403, plain, b"no valid signature of the log\n"
        size, root = int(size_text), base64.b64decode(root_text)
        with self._lock:
            if self.mode == "another tree":
                return 409, "text/x.tlog.size", f"{old}\n".encode()
            if old > size:
                return 400, plain, b"old size is larger than the checkpoint's\n"
            if old != self.latest[0]:
                return 409, "text/x.tlog.size", f"{self.latest[0]}\n".encode()
            if old == size and root != self.latest[1]:
                return 409, "text/x.tlog.size", f"{self.latest[0]}\n".encode()
            if old and not consistent(old, size, proof, self.latest[1], root):
                return 422, plain, b"the consistency proof does not verify\n"
            self.latest = (size, root)
        now = int(time.time())
        signed = self.key.sign(f"cosignature/v1\ntime {now}\n{checkpoint}".encode())
        line = base64.b64encode(self.key_id + struct.pack(">Q", now) + signed).decode()
        return 200, plain, f"\u2014 {self.name} {line}\n".encode()

    def _signed_by_log(self, checkpoint: str, signatures: str) -> bool:
        public = _raw(self.log_key)
        log_id = hashlib.sha256(self.log_origin.encode() + b"\n\x01" + public).digest()[:4]
        for line in signatures.strip("\n").split("\n"):
            name, _, encoded = line.removeprefix("\u2014 ").rpartition(" ")
            raw = base64.b64decode(encoded)
            if name == self.log_origin and raw[:4] == log_id:
                try:
                    self.log_key.verify(raw[4:], checkpoint.encode())
                except InvalidSignature:
                    return False
                return True
        return False
