"""Content-addressed file store: the claim-check half of "large payloads never ride in Kafka".

The owner of a file (claims for an 837P, eligibility for a 270, the gateway for what MCPs upload) writes the
bytes here and puts a `FileReference` (URI + SHA-256 + size) in its event; a consumer reads the bytes back and
checks the digest. Files are immutable: the same bytes always have the same address. In embedded mode the
store is a folder in the data directory; in distributed mode a volume every service mounts.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from shared.contracts.values import FileReference

SCHEME = "store://sha256/"


class FileNotStored(LookupError):
    """No file with that address is in the store."""


class FileCorrupted(ValueError):
    """The stored bytes do not match their address."""


class FileStore:
    """Immutable, content-addressed files under a root folder (sharded by the first two hex digits)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256

    def put(self, content: bytes, *, media_type: str = "application/octet-stream") -> FileReference:
        """Store bytes (atomically; a second put of the same bytes is a no-op) and return their reference."""
        digest = hashlib.sha256(content).hexdigest()
        path = self._path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(content)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return FileReference(uri=SCHEME + digest, sha256=digest, size=len(content), media_type=media_type)

    def get(self, reference: FileReference | str) -> bytes:
        """The bytes of a reference, verified against their digest; raises FileNotStored or FileCorrupted."""
        digest = reference.sha256 if isinstance(reference, FileReference) else _digest_of(reference)
        try:
            content = self._path(digest).read_bytes()
        except FileNotFoundError:
            raise FileNotStored(digest) from None
        if hashlib.sha256(content).hexdigest() != digest:
            raise FileCorrupted(digest)
        return content

    def exists(self, sha256: str) -> bool:
        """Whether bytes with this digest are stored."""
        return self._path(sha256).exists()


def _digest_of(uri: str) -> str:
    if not uri.startswith(SCHEME):
        raise ValueError(f"not a file store URI (expected {SCHEME}<hex>)")
    return uri[len(SCHEME):]
