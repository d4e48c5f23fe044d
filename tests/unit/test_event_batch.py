"""The batch event constructor: envelopes with the fields `new_event` / `caused_by` give, and UUIDv7 ids that are
unique, time-ordered and monotonic (RFC 9562) across many thousands."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from shared.bus.message import encode
from shared.contracts.claims import ClaimPaid, RemittancePosted
from shared.envelope import Envelope, EventBatch, caused_by, envelope_type, new_event
from shared.ids import uuid7

NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)


def paid(n: int = 1) -> ClaimPaid:
    return ClaimPaid(claim_id=f"CLM-{n}", mcp_code="healthnet", cbo_organization_id="org_cbo_a",
                     remittance_id="rmt_1", paid_amount=Decimal("350.00"), adjustment_amount=Decimal("0.00"),
                     paid_on=date(2026, 11, 1), settlement="paid", payment_id=f"pay_{n}", trace_number="EFT1",
                     payer_claim_number=f"PCN{n}")


def parent() -> Envelope[Any]:
    return new_event(RemittancePosted(
        remittance_id="rmt_1", mcp_code="healthnet", trace_number="EFT1", paid_amount=Decimal("350.00"),
        claims_matched=1, claims_unmatched=0, posted_at=NOW, file_id="rmf_1", payment_date=date(2026, 11, 1),
        payment_method="ACH", exceptions=0, exception_amount=Decimal("0.00"),
        provider_adjustment_amount=Decimal("0.00")), subject="rmt_1", source="claims", member_id="mbr_9", time=NOW)


def same_fields(made: Envelope[Any], reference: Envelope[Any]) -> None:
    """Every field but the id (and the correlation id when it is the event's own id) is the same, and so
    are the class and the bytes on the wire once the id is the same."""
    assert type(made) is type(reference)
    own = reference.correlation_id == reference.id
    assert made.model_dump(exclude={"id", *(("correlation_id",) if own else ())}) == \
        reference.model_dump(exclude={"id", *(("correlation_id",) if own else ())})
    assert made.correlation_id == (made.id if own else reference.correlation_id)
    twin = reference.model_copy(update={"id": made.id, "correlation_id": made.correlation_id})
    assert encode(made) == encode(twin)


def test_a_batch_event_caused_by_a_parent_has_the_fields_caused_by_gives() -> None:
    cause = parent()
    batch = EventBatch(source="claims", time=NOW, parent=cause)
    same_fields(batch.event(paid(), subject="CLM-1"),
                caused_by(cause, paid(), subject="CLM-1", source="claims", time=NOW))
    same_fields(batch.event(paid(), subject="CLM-1", member_id="mbr_1"),
                caused_by(cause, paid(), subject="CLM-1", source="claims", member_id="mbr_1", time=NOW))


def test_a_batch_event_without_a_parent_has_the_fields_new_event_gives() -> None:
    batch = EventBatch(source="claims", time=NOW)
    made = batch.event(paid(), subject="CLM-1", member_id="mbr_1")
    same_fields(made, new_event(paid(), subject="CLM-1", source="claims", member_id="mbr_1", time=NOW))
    lineage = uuid7()
    assert batch.event(paid(), subject="CLM-1", correlation_id=lineage).correlation_id == lineage


def test_a_claims_own_lineage_continues_while_the_parent_stays_the_cause() -> None:
    cause, lineage = parent(), uuid7()
    made = EventBatch(source="claims", time=NOW, parent=cause).event(paid(), subject="CLM-1", correlation_id=lineage)
    assert (made.correlation_id, made.causation_id, made.member_id) == (lineage, cause.id, "mbr_9")


def test_batch_time_is_utc_and_must_be_aware() -> None:
    pacific = timezone(timedelta(hours=-8))
    made = EventBatch(source="claims", time=NOW.astimezone(pacific)).event(paid(), subject="CLM-1")
    assert made.time == NOW and made.time.tzinfo == UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        EventBatch(source="claims", time=datetime(2026, 11, 20, 17, 0))  # naive: refused
    with pytest.raises(ValueError, match="subject"):
        EventBatch(source="claims").event(paid(), subject="")


def test_the_envelope_class_is_built_once_per_payload_class() -> None:
    assert envelope_type(ClaimPaid) is envelope_type(ClaimPaid) is type(new_event(paid(), subject="x", source="y"))
    assert envelope_type(ClaimPaid) is not envelope_type(RemittancePosted)
