"""CalHub's internal member id: a keyed hash of the CIN, the same in every service, never reversible.

Every service that sees a CIN (a referral, a MIF row, a 271) derives the same member id without asking
another service, and events, journals and Kafka keys can carry that id instead of the CIN.
The key is a per-deployment secret (CALHUB_MEMBER_ID_SECRET): without it the id cannot be linked to a CIN.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

_DEV_SECRET = "calhub-development-member-id-secret"  # noqa: S105 - development default, refused in production


@lru_cache(maxsize=1)
def member_id_secret() -> bytes:
    """The deployment's member-id key from the environment (a development default when unset).

    Read once per process: it is on the hot path of every file row, and it must not change while running.
    """
    return os.environ.get("CALHUB_MEMBER_ID_SECRET", _DEV_SECRET).encode()


def member_id_for(cin: str, secret: bytes | None = None) -> str:
    """The internal member id for a CIN: `mbr_` + 24 hex characters of HMAC-SHA256(secret, CIN)."""
    digest = hmac.new(secret or member_id_secret(), cin.strip().upper().encode(), hashlib.sha256).hexdigest()
    return f"mbr_{digest[:24]}"
