"""The referral → eligibility.verified loop over real Kafka and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


async def test_referral_is_answered_over_kafka(kafka_kit: Any) -> None:
    kit = kafka_kit
    await kit.deliver(kit.mif(period="2026-03"))
    referral = kit.referral(referral_id="ref_kafka")
    await kit.deliver(referral)
    answers = [e for e in await kit.events_of("eligibility.verified") if e.data.referral_id == "ref_kafka"]
    assert len(answers) == 1
    assert answers[0].data.mcp_code == "lacare" and answers[0].correlation_id == referral.correlation_id


async def test_271_over_kafka_publishes_lost_once(kafka_kit: Any) -> None:
    kit = kafka_kit
    await kit.deliver(kit.mif(period="2026-02"))
    await kit.deliver(kit.file_received(kit.fixture("271_inactive.x12")))
    await kit.deliver(kit.file_received(kit.fixture("271_inactive.x12")))
    lost = await kit.events_of("eligibility.lost")
    assert len(lost) == 1
