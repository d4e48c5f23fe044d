"""Which of a referral's authorizations is its current one, whatever order their events arrive in.

A referral is answered by an authorization, then by each reauthorization that continues it: a chain. The current
authorization is the newest of the chain; its end closes the loop, the end of one it continues does not. Links
arrive in any order (a dead letter replayed after the events that followed it, docs/decisions/0127), so the
current one is worked out from the set of links known so far, never from which link arrived last.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AuthorizationLink:
    """One authorization of a referral, the one it continues (None: an initial one, or not known yet) and when
    the referral learnt of it (the time of the event that linked it)."""

    authorization_id: str
    previous_authorization_id: str | None
    linked_at: datetime


def current_authorization(links: Iterable[AuthorizationLink]) -> str | None:
    """The authorization no other linked one continues; of several (a reauthorization whose predecessor is not
    known yet, e.g. linked by its end), the latest linked. None without links. Raises nothing."""
    known = list(links)
    continued = {link.previous_authorization_id for link in known}
    newest = [link for link in known if link.authorization_id not in continued] or known  # `or`: a cycle
    if not newest:
        return None
    return max(newest, key=lambda link: (link.linked_at, link.authorization_id)).authorization_id
