"""Outbox rows for a burst of events are what the bus codec gives each event alone (the header JSON is encoded
once per kind of event and the id spliced in)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from shared.bus.message import encode
from shared.contracts.claims import ClaimDenied, ClaimPaid, RemittancePosted
from shared.envelope import Envelope, caused_by, new_event
from shared.uow import encode_outbox_rows, headers_text

NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)


def paid(n: int) -> ClaimPaid:
    return ClaimPaid(claim_id=f"CLM-{n}", mcp_code="healthnet", cbo_organization_id="org_cbo_a",
                     remittance_id="rmt_1", paid_amount=Decimal("350.00"), adjustment_amount=Decimal("0.00"),
                     paid_on=date(2026, 11, 1), settlement="paid", payment_id=f"pay_{n}", trace_number="EFT1",
                     payer_claim_number=f"PCN{n}")


def test_a_burst_encodes_like_the_bus_codec_whatever_the_mix_of_types_and_trace_contexts() -> None:
    posted = new_event(RemittancePosted(
        remittance_id="rmt_1", mcp_code="healthnet", trace_number="EFT1", paid_amount=Decimal("700.00"),
        claims_matched=2, claims_unmatched=0, posted_at=NOW, file_id="rmf_1", payment_date=date(2026, 11, 1),
        payment_method="ACH", exceptions=0, exception_amount=Decimal("0.00"),
        provider_adjustment_amount=Decimal("0.00")), subject="rmt_1", source="claims", time=NOW)
    traced = posted.model_copy(update={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    events: list[Envelope[Any]] = [
        *(caused_by(posted, paid(n), subject=f"CLM-{n}", source="claims", member_id=f"mbr_{n}") for n in range(5)),
        caused_by(traced, paid(9), subject="CLM-9", source="claims"),
        caused_by(posted, ClaimDenied(claim_id="CLM-7", mcp_code="healthnet", cbo_organization_id="org_cbo_a",
                                      remittance_id="rmt_1", reason_codes=("CO-16",), category="missing_information",
                                      next_action="Add the missing information and resubmit.",
                                      denied_amount=Decimal("350.00"), payer_claim_number="PCN7"),
                  subject="CLM-7", source="claims"),
        posted, traced, *(caused_by(traced, paid(n), subject=f"CLM-{n}", source="claims") for n in (10, 11)),
    ]
    rows = encode_outbox_rows(events)
    assert [r[0] for r in rows] == [e.id for e in events]
    for row, envelope in zip(rows, events, strict=True):
        message = encode(envelope)
        assert row[1:4] == (message.topic, message.key, message.value)
        assert json.loads(row[4]) == [[k, v.decode()] for k, v in message.headers]
        assert row[4] == headers_text(message)  # the spliced template gives the text encoded directly
