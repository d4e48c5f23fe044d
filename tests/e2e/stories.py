"""Event stories told out of order: real, correctly enveloped events of one aggregate built with the contracts the
services publish, put straight onto the session's Kafka topics in any order (the order a dead-letter replay or a
lagging partition produces, never the order the producer wrote them)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from harness import Cluster

from shared.bus.message import encode
from shared.contracts.authorizations import (
    AuthorizationApproved,
    AuthorizationClosed,
    AuthorizationExpired,
    AuthorizationOrigin,
    AuthorizationRequested,
    AuthorizationResumed,
    AuthorizationSuspended,
)
from shared.contracts.base import EventData
from shared.contracts.eligibility import EligibilityLost, EligibilitySource, EligibilityVerified
from shared.contracts.values import MemberDemographics, ServiceRequested, Urgency
from shared.envelope import Envelope, new_event
from shared.identity import member_id_for
from shared.ids import uuid7

ECM = ServiceRequested(program="ecm", pof_codes=("1a", "3"))


def session_member_id(cluster: Cluster, cin: str) -> str:
    """The member id every service of this session derives from a CIN (the session's member-id secret)."""
    return member_id_for(cin, secret=cluster.base_env()["CALHUB_MEMBER_ID_SECRET"].encode())


def demographics(member: Mapping[str, Any]) -> MemberDemographics:
    """A synthetic member (harness.Members) as the contracts carry it."""
    return MemberDemographics.model_validate({
        "cin": member["cin"], "last_name": member["last_name"], "first_name": member["first_name"],
        "birth_date": member["birth_date"], "sex": member.get("sex"), "phone": member.get("phone"),
        "address": {**member["address"], "state": "CA"}})


@dataclass
class Story:
    """Events of one aggregate in the order they happened (`told`), ready to be published in another."""

    subject: str
    member_id: str
    source: str
    correlation_id: uuid.UUID = field(default_factory=uuid7)
    told: list[Envelope[Any]] = field(default_factory=list)

    def add(self, data: EventData, at: datetime) -> Envelope[Any]:
        """The next event of the story, dated when it happened."""
        envelope = new_event(data, subject=self.subject, source=self.source, member_id=self.member_id,
                             correlation_id=self.correlation_id,
                             causation_id=self.told[-1].id if self.told else None, time=at)
        self.told.append(envelope)
        return envelope

    def in_order(self, *indexes: int) -> list[Envelope[Any]]:
        """The story's events in the given order (indexes into `told`)."""
        return [self.told[i] for i in indexes]


def authorization_story(cluster: Cluster, member: Mapping[str, Any], *, cbo_organization_id: str,
                        period_start: date, period_end: date, suspended_on: date, resumed_on: date,
                        mcp_code: str = "lacare", referral_id: str | None = None,
                        authorization_id: str | None = None) -> Story:
    """requested → approved → suspended → resumed, as the authorizations service tells it."""
    auth_id = authorization_id or f"auth_{uuid7().hex}"
    now = datetime.now(UTC)
    story = Story(subject=auth_id, member_id=session_member_id(cluster, member["cin"]), source="authorizations")
    asked = now - timedelta(days=70)
    story.add(AuthorizationRequested(
        authorization_id=auth_id, referral_id=referral_id, member=demographics(member), mcp_code=mcp_code,
        cbo_organization_id=cbo_organization_id, service=ECM, urgency=Urgency.STANDARD,
        origin=AuthorizationOrigin.REFERRAL, requested_at=asked, decision_due=asked + timedelta(days=7),
        calendar="california_state", deadline_basis="standard_business_days"), asked)
    decided = now - timedelta(days=65)
    story.add(AuthorizationApproved(
        authorization_id=auth_id, referral_id=referral_id, mcp_code=mcp_code, cbo_organization_id=cbo_organization_id,
        service=ECM, decided_at=decided, mcp_authorization_number=f"LAC-{auth_id[-10:]}", period_start=period_start,
        period_end=period_end), decided)
    story.add(AuthorizationSuspended(
        authorization_id=auth_id, mcp_code=mcp_code, cbo_organization_id=cbo_organization_id,
        reason="eligibility lost", effective=suspended_on), _noon(suspended_on))
    story.add(AuthorizationResumed(
        authorization_id=auth_id, mcp_code=mcp_code, cbo_organization_id=cbo_organization_id,
        effective=resumed_on), _noon(resumed_on))
    return story


def decision_and_end(cluster: Cluster, authorization_id: str, member: Mapping[str, Any], *, referral_id: str,
                     cbo_organization_id: str, period_start: date, period_end: date, ended_on: date,
                     correlation_id: uuid.UUID, mcp_code: str = "lacare", expired: bool = False) -> Story:
    """approved → closed (discontinued by the MCP) or expired, for an authorization whose request is known."""
    story = Story(subject=authorization_id, member_id=session_member_id(cluster, member["cin"]),
                  source="authorizations", correlation_id=correlation_id)
    decided = datetime.now(UTC)  # after the request it answers (which happened moments ago)
    story.add(AuthorizationApproved(
        authorization_id=authorization_id, referral_id=referral_id, mcp_code=mcp_code,
        cbo_organization_id=cbo_organization_id, service=ECM, decided_at=decided,
        mcp_authorization_number=f"LAC-{authorization_id[-10:]}", period_start=period_start, period_end=period_end),
        decided)
    if expired:
        story.add(AuthorizationExpired(authorization_id=authorization_id, mcp_code=mcp_code,
                                       cbo_organization_id=cbo_organization_id, period_end=period_end),
                  decided + timedelta(seconds=1))
    else:
        story.add(AuthorizationClosed(authorization_id=authorization_id, mcp_code=mcp_code,
                                      cbo_organization_id=cbo_organization_id, reason="discontinued_by_mcp",
                                      effective=ended_on), decided + timedelta(seconds=1))
    return story


def reauthorization_and_end(cluster: Cluster, authorization_id: str, member: Mapping[str, Any], *,
                            referral_id: str, cbo_organization_id: str, period_start: date, period_end: date,
                            ended_on: date, correlation_id: uuid.UUID, mcp_code: str = "lacare",
                            ) -> tuple[Story, Story]:
    """An authorization whose request is known is approved (first story); its reauthorization, continuing the
    same referral and lineage, is requested, approved and closed by the MCP (second story, its own subject)."""
    member_id = session_member_id(cluster, member["cin"])
    decision = Story(subject=authorization_id, member_id=member_id, source="authorizations",
                     correlation_id=correlation_id)
    decided = datetime.now(UTC)
    decision.add(AuthorizationApproved(
        authorization_id=authorization_id, referral_id=referral_id, mcp_code=mcp_code,
        cbo_organization_id=cbo_organization_id, service=ECM, decided_at=decided,
        mcp_authorization_number=f"LAC-{authorization_id[-10:]}", period_start=period_start,
        period_end=period_end), decided)
    reauthorization_id = f"auth_{uuid7().hex}"
    story = Story(subject=reauthorization_id, member_id=member_id, source="authorizations",
                  correlation_id=correlation_id)
    asked = decided + timedelta(seconds=1)
    story.add(AuthorizationRequested(
        authorization_id=reauthorization_id, referral_id=referral_id, member=demographics(member), mcp_code=mcp_code,
        cbo_organization_id=cbo_organization_id, service=ECM, urgency=Urgency.STANDARD,
        origin=AuthorizationOrigin.REAUTHORIZATION, previous_authorization_id=authorization_id, requested_at=asked,
        decision_due=asked + timedelta(days=7), calendar="california_state",
        deadline_basis="standard_business_days"), asked)
    story.add(AuthorizationApproved(
        authorization_id=reauthorization_id, referral_id=referral_id, mcp_code=mcp_code,
        cbo_organization_id=cbo_organization_id, service=ECM, decided_at=asked + timedelta(seconds=1),
        mcp_authorization_number=f"LAC-{reauthorization_id[-10:]}", period_start=period_end + timedelta(days=1),
        period_end=period_end + timedelta(days=180), origin=AuthorizationOrigin.REAUTHORIZATION,
        previous_authorization_id=authorization_id), asked + timedelta(seconds=1))
    story.add(AuthorizationClosed(
        authorization_id=reauthorization_id, referral_id=referral_id, mcp_code=mcp_code,
        cbo_organization_id=cbo_organization_id, reason="discontinued_by_mcp", effective=ended_on),
        asked + timedelta(seconds=2))
    return decision, story


def eligibility_story(cluster: Cluster, member: Mapping[str, Any], *, verified_on: date,
                      lost_on: date | None = None, mcp_code: str = "lacare") -> Story:
    """verified (as of `verified_on`) → lost (from `lost_on`), as the eligibility service tells it."""
    member_id = session_member_id(cluster, member["cin"])
    story = Story(subject=member_id, member_id=member_id, source="eligibility")
    story.add(EligibilityVerified(cin=member["cin"], mcp_code=mcp_code, source=EligibilitySource.X12_271,
                                  as_of=verified_on, verified_at=_noon(verified_on), span_start=verified_on,
                                  first_seen=True), _noon(verified_on))
    if lost_on is not None:
        story.add(EligibilityLost(cin=member["cin"], mcp_code=mcp_code, source=EligibilitySource.X12_271,
                                  as_of=lost_on, verified_at=_noon(lost_on), effective=lost_on,
                                  reason="coverage inactive"), _noon(lost_on))
    return story


def _noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


async def publish(cluster: Cluster, envelopes: Sequence[Envelope[Any]]) -> None:
    """Put envelopes on the session's topics one after the other, in exactly this order, encoded as the
    services' own outbox relays encode them (key = subject, type and id in headers)."""
    producer = AIOKafkaProducer(bootstrap_servers=cluster.kafka, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for envelope in envelopes:
            message = encode(envelope)
            await producer.send_and_wait(cluster.topic_prefix + message.topic, message.value, key=message.key,
                                         headers=list(message.headers))
    finally:
        await producer.stop()
