"""Claims: identifiers, the status lifecycle, and how recorded encounters group into claims.

Lifecycle: draft -> batched -> submitted -> accepted | rejected -> paid | denied (| reversed); a draft the 837P
cannot carry is rejected at batching. A rejected claim is corrected back to draft and batched again; an accepted
or adjudicated claim is changed by a new claim with frequency 7 (replacement) or 8 (void) that quotes the
payer's claim number in REF*F8.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from shared.ids import uuid7

MAX_LINES = 50  # 005010X222A1: loop 2400 repeats at most 50 times
MAX_DIAGNOSES = 12  # HI in loop 2300


class ClaimStatus(StrEnum):
    """Where a claim is in its life."""

    DRAFT = "draft"
    BATCHED = "batched"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PAID = "paid"
    DENIED = "denied"
    REVERSED = "reversed"


_ADJUDICATED = {ClaimStatus.PAID, ClaimStatus.DENIED}
TRANSITIONS: dict[ClaimStatus, frozenset[ClaimStatus]] = {
    # A draft the 837P cannot carry (a value it cannot hold, loops that fail the validator) is rejected at batching,
    # alone, and corrected like a claim the MCP rejected.
    ClaimStatus.DRAFT: frozenset({ClaimStatus.BATCHED, ClaimStatus.REJECTED}),
    # A 999/277CA (or even the 835: MCPs without a 277CA) can arrive before the gateway reports delivery:
    # batched goes straight to its answer.
    ClaimStatus.BATCHED: frozenset({ClaimStatus.SUBMITTED, ClaimStatus.ACCEPTED, ClaimStatus.REJECTED,
                                    *_ADJUDICATED}),
    ClaimStatus.SUBMITTED: frozenset({ClaimStatus.ACCEPTED, ClaimStatus.REJECTED, *_ADJUDICATED}),
    ClaimStatus.ACCEPTED: frozenset({ClaimStatus.REJECTED, *_ADJUDICATED}),  # a late 277CA may still reject
    ClaimStatus.REJECTED: frozenset({ClaimStatus.DRAFT}),  # corrected and batched again
    ClaimStatus.PAID: frozenset({ClaimStatus.REVERSED, *_ADJUDICATED}),
    ClaimStatus.DENIED: frozenset(_ADJUDICATED),
    ClaimStatus.REVERSED: frozenset(_ADJUDICATED),
}
# After submission every change is recorded in the claim's history (who, when, what).
SUBMITTED_STATES = frozenset(ClaimStatus) - {ClaimStatus.DRAFT}
# A replacement (7) or void (8) needs the payer's claim number, so the original must be in the payer's system.
REPLACEABLE = frozenset({ClaimStatus.ACCEPTED, ClaimStatus.PAID, ClaimStatus.DENIED})


class InvalidTransition(ValueError):
    """A claim cannot move from its status to the one asked."""

    def __init__(self, current: ClaimStatus, target: ClaimStatus) -> None:
        super().__init__(f"a {current.value} claim cannot become {target.value}")
        self.current = current
        self.target = target


def check_transition(current: ClaimStatus, target: ClaimStatus) -> None:
    """Raise InvalidTransition unless the lifecycle allows current -> target."""
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(current, target)


def _short_id(prefix: str, length: int) -> str:
    # Upper-case base32 of a UUIDv7 (time-ordered): letters and digits only, safe in X12 basic character set.
    text = base64.b32encode(uuid7().bytes).decode().rstrip("=")
    return prefix + text[:length]


def new_claim_id() -> str:
    """A claim id for CLM01 (at most 20 characters, echoed as CLP01 in the 835 and TRN02 in the 277CA)."""
    return _short_id("C", 19)


def new_encounter_id() -> str:
    """An encounter id (also the line's REF*6R control number)."""
    return _short_id("E", 25)


def new_batch_id() -> str:
    """A claim batch id (BHT03 prefix)."""
    return _short_id("B", 19)


@dataclass(frozen=True)
class ClaimKey:
    """Encounters with the same key go on the same claim (one member, CBO, service, authorization, month)."""

    mcp_code: str
    cbo_organization_id: str
    member_id: str
    program: str
    service_code: str
    authorization_id: str | None
    rendering_npi: str
    service_month: date

    @staticmethod
    def month_of(day: date) -> date:
        """The first day of the month of `day`."""
        return day.replace(day=1)


def merge_diagnoses(existing: tuple[str, ...], new: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
    """The claim's diagnosis list with `new` merged in and the line's 1-based pointers (at most 4), or None
    when the claim would exceed 12 codes."""
    codes = list(existing)
    pointers: list[int] = []
    for code in new:
        if code not in codes:
            codes.append(code)
        pointer = codes.index(code) + 1
        if pointer not in pointers and len(pointers) < 4:
            pointers.append(pointer)
    if len(codes) > MAX_DIAGNOSES:
        return None
    return tuple(codes), tuple(pointers)
