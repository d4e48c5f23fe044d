"""OpenPGP with python-gnupg and the gpg binary: decrypt what MCPs send, encrypt what they receive.

Keys live in a GNUPGHOME under the data directory: the hub's private key (imported by operations, never in
the repository) and each MCP's public key (from its profile). gpg is a subprocess: callers run these
methods in a worker thread.
"""

from __future__ import annotations

import threading
from pathlib import Path

import gnupg

# OpenPGP packet tags that start an encrypted message (RFC 4880 4.2): old/new format public-key or symmetric
# session key packets, or an ASCII-armored message.
_ARMOR = b"-----BEGIN PGP MESSAGE-----"


class PgpError(Exception):
    """Decryption or encryption failed; the message is the gpg status only (no content)."""


def looks_encrypted(content: bytes) -> bool:
    """True when the bytes look like an OpenPGP message (armored, or a binary PKESK/SKESK packet first)."""
    if content.lstrip()[:27] == _ARMOR:
        return True
    if not content:
        return False
    tag = content[0]
    if tag & 0x80 == 0:
        return False
    packet = (tag & 0x3F) if tag & 0x40 else ((tag >> 2) & 0x0F)
    return packet in (1, 3)


class Pgp:
    """The gateway's gpg keyring."""

    def __init__(self, home: Path, passphrase: str | None = None) -> None:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        home.chmod(0o700)
        self.home = home
        self._passphrase = passphrase
        self._gpg = gnupg.GPG(gnupghome=str(home))
        self._gpg.encoding = "utf-8"
        self._lock = threading.Lock()  # one gpg-agent conversation at a time per keyring
        self._imported: set[str] = set()

    def import_public_key(self, armored: str) -> list[str]:
        """Import (once) an ASCII-armored key; returns its fingerprints. Raises PgpError if none imported."""
        if armored in self._imported:
            return []
        with self._lock:
            result = self._gpg.import_keys(armored)
        if not result.fingerprints:
            raise PgpError("no key could be imported")
        self._imported.add(armored)
        return list(result.fingerprints)

    def decrypt(self, content: bytes) -> bytes:
        """The plaintext of an encrypted message; raises PgpError (gpg's status) when it cannot be read."""
        with self._lock:
            result = self._gpg.decrypt(content, passphrase=self._passphrase)
        if not result.ok:
            raise PgpError(str(result.status or "decryption failed"))
        return bytes(result.data)

    def encrypt(self, content: bytes, recipient: str) -> bytes:
        """Encrypt to one recipient's fingerprint (binary OpenPGP); raises PgpError if gpg refuses."""
        with self._lock:
            result = self._gpg.encrypt(content, [recipient], always_trust=True, armor=False)
        if not result.ok:
            raise PgpError(str(result.status or "encryption failed"))
        return bytes(result.data)
