"""Console sessions: a signed, HttpOnly, SameSite=Strict cookie carrying who logged in, and CSRF tokens.

The cookie holds the caller (organization, key id, scopes), a CSRF token and an absolute expiry, signed with
HMAC-SHA256 under the session secret; it never holds the API key. Every page asks the authenticator whether the
key id is still active, so revoking the key ends its sessions (within the auth cache TTL in other processes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.auth import Caller

log = logging.getLogger("calhub.ops.console")

SESSION_COOKIE = "calhub_ops_session"
LOGIN_COOKIE = "calhub_ops_login"
SECRET_FILE = "ops-session-secret"  # noqa: S105 - a file name, not a secret


@dataclass(frozen=True)
class ConsoleSession:
    """A logged-in console user."""

    organization_id: str
    organization_kind: str
    organization_code: str | None
    key_id: str
    scopes: tuple[str, ...]
    csrf: str
    expires_at: int

    def caller(self) -> Caller:
        """The session's caller, for audit records."""
        return Caller(organization_id=self.organization_id, organization_kind=self.organization_kind,  # type: ignore[arg-type]
                      organization_code=self.organization_code, key_id=self.key_id, scopes=frozenset(self.scopes))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, value: dict[str, object]) -> str:
    """`<base64 json>.<base64 HMAC-SHA256>` of a JSON-able dict."""
    body = _b64(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())
    mac = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    return f"{body}.{mac}"


def unsign(secret: bytes, token: str | None) -> dict[str, object] | None:
    """The dict of a token this secret signed, or None (tampered, malformed or foreign)."""
    if not token or token.count(".") != 1:
        return None
    body, mac = token.split(".")
    expected = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        value = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def new_session(caller: Caller, now: float, hours: float) -> ConsoleSession:
    """A session for a caller who just logged in."""
    return ConsoleSession(organization_id=caller.organization_id, organization_kind=caller.organization_kind,
                          organization_code=caller.organization_code, key_id=caller.key_id,
                          scopes=tuple(sorted(caller.scopes)), csrf=secrets.token_urlsafe(32),
                          expires_at=int(now + hours * 3600))


def encode_session(secret: bytes, session: ConsoleSession) -> str:
    """The cookie value of a session."""
    return sign(secret, {"o": session.organization_id, "k": session.organization_kind,
                         "c": session.organization_code, "i": session.key_id, "s": list(session.scopes),
                         "x": session.csrf, "e": session.expires_at})


def decode_session(secret: bytes, token: str | None, now: float) -> ConsoleSession | None:
    """The session in a cookie, or None if it is missing, forged or expired."""
    value = unsign(secret, token)
    if value is None:
        return None
    try:
        session = ConsoleSession(organization_id=str(value["o"]), organization_kind=str(value["k"]),
                                 organization_code=None if value["c"] is None else str(value["c"]),
                                 key_id=str(value["i"]), scopes=tuple(str(s) for s in value["s"]),  # type: ignore[attr-defined]
                                 csrf=str(value["x"]), expires_at=int(value["e"]))  # type: ignore[call-overload]
    except (KeyError, TypeError, ValueError):
        return None
    return session if session.expires_at > now else None


def csrf_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the session's."""
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode())


def session_secret(configured: str | None, *, mode: str, data_dir: Path) -> bytes:
    """The cookie-signing key: the configured one; in embedded mode one generated once into the data directory;
    in distributed mode without configuration a per-process key (sessions end with the process)."""
    if configured:
        return configured.encode()
    if mode == "embedded":
        path = data_dir / SECRET_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process created it first: use theirs
                pass
            else:
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(secrets.token_hex(32))
        return path.read_text().strip().encode()
    log.warning("OPS_SESSION_SECRET is not set; console sessions last only as long as this process")
    return secrets.token_bytes(32)
