"""Which of a referral's authorizations is its current one, whatever order their events arrive in.

A referral is answered by an authorization, then by each reauthorization that continues it: a chain. The current
authorization is the newest of the chain; its end closes the loop, the end of one it continues does not. A denied
reauthorization does not continue anything: the member is still served under the authorization it would have
continued, whose end then closes the loop. Links arrive in any order (a dead letter replayed after the events that
followed it, docs/decisions/0127), so the current one is worked out from the set of links known so far, never
from which link arrived last.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AuthorizationEnd:
    """How an authorization ended: the loop-closure code it gives (a `ClosureReason` value), the reason and when
    the referral learnt of it."""

    code: str
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class AuthorizationLink:
    """One authorization of a referral, the one it continues (None: an initial one, or not known yet), when
    the referral learnt of it (the time of the event that linked it), whether the MCP's latest decision on it (by
    `decided_at`) is a denial or an approval (neither: not decided yet), and its end once it ended."""

    authorization_id: str
    previous_authorization_id: str | None
    linked_at: datetime
    denied: bool = False
    end: AuthorizationEnd | None = None
    approved: bool = False
    decided_at: datetime | None = None


def current_link(links: Iterable[AuthorizationLink]) -> AuthorizationLink | None:
    """The link of the current authorization: of those not denied (all, if every one is), the one no other
    continues; of several (a reauthorization whose predecessor is not known yet, e.g. linked by its end), the
    latest linked. None without links. Raises nothing."""
    known = list(links)
    # A denied reauthorization never replaces the authorization it was asked to continue; a referral whose
    # only authorization was denied keeps that one (it is declined).
    live = [link for link in known if not link.denied] or known
    continued = {link.previous_authorization_id for link in live}
    newest = [link for link in live if link.authorization_id not in continued] or live  # `or`: a cycle
    if not newest:
        return None
    return max(newest, key=lambda link: (link.linked_at, link.authorization_id))


def current_authorization(links: Iterable[AuthorizationLink]) -> str | None:
    """The id of the current authorization (`current_link`); None without links. Raises nothing."""
    link = current_link(links)
    return link.authorization_id if link is not None else None
