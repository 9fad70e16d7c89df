"""The local-directory store: the same key layout as S3, under a directory.

A copy is durable before the ack: it is written to a temporary file beside
its final name, fsynced, read back and checked against its MD5, then published
with link(2), which is atomic and refuses to replace an existing copy
(write-once, like S3's `If-None-Match: *`), and the directory is fsynced. A
crash at any point leaves either no copy or the whole copy, never a torn one.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path

from msgarchive_server.stores.base import (
    Capability,
    ErrorKind,
    ListPage,
    NoSuchObject,
    ObjectSummary,
    PutResult,
    Retention,
    StoredObject,
    StoreError,
)

# File-system errors that retrying can cure; anything else is a setup problem.
_TRANSIENT_ERRNOS = {errno.EIO, errno.ENOSPC, errno.EDQUOT, errno.EINTR, errno.EAGAIN}
# link(2) is not supported here: publish with rename(2) after an existence check.
_NO_LINK_ERRNOS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}


class LocalStore:
    """Copies as files under `root`, at the same keys the S3 store uses."""

    remote = False
    # One file a key: no versions, no legal hold; and a directory cannot keep
    # anyone from deleting a file, so it is never asked to keep a retention
    # (the sidecar refuses the setting at startup rather than pretend).
    capabilities = Capability.basic()
    retention: Retention | None = None

    def __init__(self, root: Path, prefix: str = "") -> None:
        self.root = root.resolve()
        self.bucket = str(self.root)
        self.prefix = prefix

    def put(self, key: str, body: bytes, content_type: str = "") -> PutResult:
        """As Store.put; a file has no content type."""
        path = self._path(key)
        md5 = hashlib.md5(body, usedforsecurity=False).digest()
        try:
            _make_dirs(path.parent, self.root)
            if not path.exists() and _write_verified(path, body, md5):
                return PutResult(md5.hex(), "")
            existing = path.read_bytes()
        except OSError as err:
            raise _store_error(err) from None
        return PutResult(hashlib.md5(existing, usedforsecurity=False).hexdigest(), "", existing)

    def get(self, key: str) -> StoredObject:
        path = self._path(key)
        try:
            body = path.read_bytes()
            stored_at = path.stat().st_mtime_ns // 1_000_000
        except FileNotFoundError:
            raise NoSuchObject(key) from None
        except OSError as err:
            raise _store_error(err) from None
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
        return StoredObject(body, etag, "", stored_at)

    def read(self, key: str, version_id: str = "") -> bytes:
        """The file's bytes; a directory keeps one version, whose id is ""."""
        if version_id:
            raise NoSuchObject(key)
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NoSuchObject(key) from None
        except OSError as err:
            raise _store_error(err) from None

    def list(self, prefix: str, start_after: str = "", limit: int = 1000) -> ListPage:
        # Keys sort as strings, which a walk of sorted directory names does not
        # give ("a-b/" sorts before "a/"): gather, then sort.
        top = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        found: list[tuple[str, Path]] = []
        for directory, _, files in os.walk(top):
            for name in files:
                if name.startswith("."):
                    continue  # temporary and probe files
                path = Path(directory, name)
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix) and key > start_after:
                    found.append((key, path))
        found.sort()
        items: list[ObjectSummary] = []
        for key, path in found[:limit]:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            items.append(ObjectSummary(key, stat.st_size, "", stat.st_mtime_ns // 1_000_000))
        return ListPage(items, truncated=len(found) > limit)

    def probe(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=".probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise StoreError(
                _errno_name(err), ErrorKind.FATAL, f"cannot write to {self.root}: {err.strerror}"
            ) from None

    def reconnect(self) -> None:
        """Nothing is cached: every write opens its own files."""

    def close(self) -> None:
        """Nothing to release: every write opens and closes its own files."""

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise StoreError("InvalidKey", ErrorKind.REJECTED, "key escapes the store directory")
        return path


def _write_verified(path: Path, body: bytes, md5: bytes) -> bool:
    """Write `body` at `path` durably; False when a copy got there first."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        if _md5_of(tmp) != md5:
            raise StoreError("BadDigest", ErrorKind.TRANSIENT, "the written file does not match")
        created = _publish(tmp, path)
        _fsync_dir(path.parent)
        return created
    finally:
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path) -> bool:
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as err:
        if err.errno not in _NO_LINK_ERRNOS:
            raise
        if path.exists():
            return False
        os.rename(tmp, path)
    return True


def _make_dirs(directory: Path, root: Path) -> None:
    """Create `directory` and its missing parents, each one made durable."""
    missing: list[Path] = []
    current = directory
    while not current.exists() and current != root:
        missing.append(current)
        current = current.parent
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:
            continue
        _fsync_dir(new.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _md5_of(path: Path) -> bytes:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).digest()


def _errno_name(err: OSError) -> str:
    return errno.errorcode.get(err.errno or 0, "OSError")


def _store_error(err: OSError) -> StoreError:
    kind = ErrorKind.TRANSIENT if err.errno in _TRANSIENT_ERRNOS else ErrorKind.FATAL
    return StoreError(_errno_name(err), kind, err.strerror or "")
