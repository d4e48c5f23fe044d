"""Fixtures of the eligibility tests: a harness with a fixed clock, event publishing, 271 fixtures, waits.

Synthetic data only: CINs 9000000xA, surname Testperson.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from eligibility.bootstrap import EligibilityScheduler, definition
from eligibility.repository import EligibilityUnitOfWork
from eligibility.x12.x270 import parse_270

from shared.bus.message import decode, encode
from shared.contracts.authorizations import AuthorizationApproved, AuthorizationRequested
from shared.contracts.gateway import FileKind, FileReceived, MemberInformationReceived
from shared.contracts.referrals import ReferralReceived
from shared.contracts.values import MemberDemographics, Program, ServiceRequested, Urgency
from shared.envelope import Envelope, new_event
from shared.filestore import FileStore
from shared.identity import member_id_for
from shared.ids import uuid7
from shared.runtime import ServiceRuntime
from shared.scheduler import FixedClock
from shared.testing.app import ServiceHarness, make_caller, service_harness
from shared.testing.polling import eventually
from shared.x12.envelope import EnvelopeSpec, Party, build_interchange

FIXTURES = Path(__file__).parent / "fixtures"
HUB = "hub-token"
CBO = "cbo-token"
OTHER_CBO = "cbo2-token"
LACARE = "lacare-token"
HEALTHNET = "healthnet-token"
KEYS = {
    HUB: make_caller("hub", "org_hub", scopes=("eligibility:write",)),
    CBO: make_caller("cbo", "org_cbo_harbor", scopes=("eligibility:write",)),
    OTHER_CBO: make_caller("cbo", "org_cbo_valley", scopes=("eligibility:write",)),
    LACARE: make_caller("mcp", "org_lacare", code="lacare", scopes=("eligibility:write",)),
    HEALTHNET: make_caller("mcp", "org_healthnet", code="healthnet", scopes=("eligibility:read",)),
}
NOW = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 09:00 Pacific, Monday 2 March 2026


def member(cin: str = "90000001A", first: str = "Ana") -> MemberDemographics:
    """A synthetic member."""
    return MemberDemographics(cin=cin, last_name="Testperson", first_name=first, birth_date=date(1980, 1, 2),
                              sex="F")


@dataclass
class Kit:
    """What an eligibility test needs to drive the service."""

    harness: ServiceHarness
    clock: FixedClock

    @property
    def runtime(self) -> ServiceRuntime:
        return self.harness.runtimes["eligibility"]

    @property
    def files(self) -> FileStore:
        return FileStore(self.harness.platform.file_store_path())

    def uow(self) -> EligibilityUnitOfWork:
        uow = self.runtime.uow()
        assert isinstance(uow, EligibilityUnitOfWork)
        return uow

    @property
    def scheduler(self) -> EligibilityScheduler:
        part = self.runtime.background[0]
        assert isinstance(part, EligibilityScheduler)
        return part

    async def publish(self, envelope: Envelope[Any]) -> None:
        await self.harness.bus.publish([encode(envelope)])

    async def deliver(self, envelope: Envelope[Any]) -> None:
        """Publish an event and wait until the eligibility consumer handled it (its inbox has the id)."""
        await self.publish(envelope)
        tables = self.runtime.definition.tables

        async def handled() -> bool:
            from sqlalchemy import select

            async with self.uow() as uow:
                row = (await uow.session.execute(select(tables.inbox.c.event_id).where(
                    tables.inbox.c.event_id == envelope.id))).first()
            return row is not None

        await eventually(handled, what=f"{envelope.type} handled", within=15.0)

    async def events(self, topic: str = "eligibility.eligibility.v1") -> list[Envelope[Any]]:
        """Every event the service published on a topic so far, once each (delivery is at least once)."""
        relay = self.runtime.relay

        async def drained() -> bool:
            return await relay.backlog() == 0

        await eventually(drained, what="outbox drained", within=15.0)
        bus: Any = self.harness.bus
        seen: dict[Any, Envelope[Any]] = {}
        for message in await _read(bus, topic):
            envelope = decode(message)
            seen.setdefault(envelope.id, envelope)
        return list(seen.values())

    async def events_of(self, event_type: str, topic: str = "eligibility.eligibility.v1") -> list[Envelope[Any]]:
        return [e for e in await self.events(topic) if e.type == event_type]

    def mif(self, cin: str = "90000001A", mcp: str = "lacare", period: str = "2026-02") -> Envelope[Any]:
        return new_event(MemberInformationReceived(file_id="file_mif_1", row_number=1, mcp_code=mcp,
                                                   member=member(cin), reporting_period=period),
                         subject="file_mif_1", source="sftp-gateway", member_id=member_id_for(cin))

    def file_received(self, text: str, mcp: str = "lacare", kind: FileKind = FileKind.X12_271,
                      file_id: str | None = None) -> Envelope[Any]:
        reference = self.files.put(text.encode(), media_type="application/edi-x12")
        file_id = file_id or f"file_{uuid7().hex}"
        return new_event(FileReceived(file_id=file_id, mcp_code=mcp, kind=kind, file=reference,
                                      received_at=self.clock.now()), subject=file_id, source="sftp-gateway")

    def referral(self, cin: str = "90000001A", mcp: str | None = None, county: str = "Los Angeles",
                 referral_id: str = "ref_1", program: Program = Program.ECM) -> Envelope[Any]:
        return new_event(ReferralReceived(
            referral_id=referral_id, member=member(cin), service=ServiceRequested(program=program, pof_codes=("1a",)),
            urgency=Urgency.STANDARD, referring_organization_id="org_cbo_harbor", county=county, mcp_code=mcp,
            received_at=self.clock.now()), subject=referral_id, source="referrals", member_id=member_id_for(cin))

    def authorization(self, cin: str = "90000001A", mcp: str = "lacare", authorization_id: str = "auth_1",
                      start: date = date(2026, 1, 1), end: date = date(2026, 12, 31),
                      program: Program = Program.ECM) -> list[Envelope[Any]]:
        service = ServiceRequested(program=program, pof_codes=("1a",) if program is Program.ECM else ())
        requested = new_event(AuthorizationRequested(
            authorization_id=authorization_id, member=member(cin), mcp_code=mcp,
            cbo_organization_id="org_cbo_harbor", service=service, urgency=Urgency.STANDARD,
            origin="referral", requested_at=self.clock.now(), decision_due=self.clock.now(), calendar="US-CA"),
            subject=authorization_id, source="authorizations", member_id=member_id_for(cin))
        approved = new_event(AuthorizationApproved(
            authorization_id=authorization_id, mcp_code=mcp, cbo_organization_id="org_cbo_harbor", service=service,
            decided_at=self.clock.now(), period_start=start, period_end=end),
            subject=authorization_id, source="authorizations", member_id=member_id_for(cin))
        return [requested, approved]

    @staticmethod
    def fixture(name: str) -> str:
        """A 271 fixture file's text."""
        return fixture_text(name)

    @staticmethod
    def answer_270(text_270: str, *, active: bool = True, control: int = 900) -> str:
        """A 271 answering every member of a 270."""
        return answer_270(text_270, active=active, control=control)

    @staticmethod
    def member_answer(cin: str, *traces: tuple[str, str, str]) -> list[list[str]]:
        """A member's answer (2000C): the TRNs given (TRN01, TRN02, TRN03), active coverage from 2025-01-01."""
        return member_answer(cin, *traces)

    @staticmethod
    def response_set(reference: str, members: Sequence[list[list[str]]] = (),
                     rejection: str | None = None) -> list[list[str]]:
        """One 271 transaction set echoing BHT03 `reference` (see `response_set`)."""
        return response_set(reference, members, rejection=rejection)

    @staticmethod
    def make_271(*sets: list[list[str]], control: int = 900) -> str:
        """A 271 interchange of these transaction sets."""
        return make_271(*sets, control=control)

    async def add_check(self, check_id: str, cin: str = "90000001A", mcp: str = "lacare",
                        referral_id: str | None = None, batch_id: str | None = "eb_fixture_batch") -> None:
        async with self.uow() as uow:
            await uow.members.ensure(member_id_for(cin), cin, self.clock.now(), last_name="Testperson",
                                     first_name="Ana", birth_date=date(1980, 1, 2))
            await uow.checks.add(check_id=check_id, member_id=member_id_for(cin), mcp_code=mcp, reason="job",
                                 status="sent", service_date=self.clock.now().date(), referral_id=referral_id,
                                 batch_id=batch_id, requested_at=self.clock.now(), sent_at=self.clock.now())
            await uow.commit()


async def _read(bus: Any, topic: str) -> list[Any]:
    result = bus.read(topic)
    if asyncio.iscoroutine(result):
        result = await result
    return list(result)


def fixture_text(name: str) -> str:
    """A 271 fixture file's text."""
    return (FIXTURES / name).read_text()


def answer_270(text_270: str, *, active: bool = True, mcp_name: str = "L.A. CARE HEALTH PLAN",
               payer_id: str = "LACARE", control: int = 900) -> str:
    """A 271 answering every member of a 270 (active with coverage from 2025-01-01, or inactive)."""
    inquiry = parse_270(text_270)
    bodies = []
    for transaction in inquiry["transactions"]:
        body: list[list[str]] = [["BHT", "0022", "11", transaction["reference"], "20260302", "0900"],
                                 ["HL", "1", "", "20", "1"],
                                 ["NM1", "PR", "2", mcp_name, "", "", "", "", "PI", payer_id],
                                 ["HL", "2", "1", "21", "1"],
                                 ["NM1", "1P", "2", "CALHUB HUB", "", "", "", "", "XX", "1234567893"]]
        hl = 3
        for source in transaction["information_sources"]:
            for receiver in source["receivers"]:
                for m in receiver["members"]:
                    body += [["HL", str(hl), "2", "22", "0"], ["TRN", "2", m["traces"][0], "9CALHUB000"],
                             ["NM1", "IL", "1", m["last_name"], m["first_name"], "", "", "", "MI", m["member_id"]]]
                    if active:
                        body += [["EB", "1", "IND", "30", "MC"], ["DTP", "346", "D8", "20250101"]]
                    else:
                        body += [["EB", "6", "IND", "30", "MC"], ["DTP", "357", "D8", "20260228"]]
                    hl += 1
        bodies.append(body)
    spec = EnvelopeSpec(sender=Party("ZZ", payer_id, payer_id), receiver=Party("ZZ", "CALHUB", "CALHUB"),
                        interchange_control_number=control, group_control_number=control, functional_code="HB",
                        version="005010X279A1", created=datetime(2026, 3, 2, 9, 0))
    return build_interchange(spec, bodies, line_breaks=True)


def member_answer(cin: str, *traces: tuple[str, str, str]) -> list[list[str]]:
    """A member's answer (2000C): the TRNs given (TRN01, TRN02, TRN03), active coverage from 2025-01-01."""
    return [*(["TRN", *trace] for trace in traces),
            ["NM1", "IL", "1", "TESTPERSON", "ANA", "", "", "", "MI", cin],
            ["EB", "1", "IND", "30", "MC"], ["DTP", "346", "D8", "20250101"]]


def response_set(reference: str, members: Sequence[list[list[str]]] = (), *,
                 rejection: str | None = None) -> list[list[str]]:
    """One 271 transaction set echoing BHT03 `reference`: the MCP, the hub and each member answer; or, with
    `rejection` (an AAA03 code), the MCP rejecting the whole set at 2000A (AAA*Y, follow-up R: resubmit)."""
    body: list[list[str]] = [["BHT", "0022", "11", reference, "20260302", "0900"]]
    if rejection is not None:
        return [*body, ["HL", "1", "", "20", "0"], ["AAA", "Y", "", rejection, "R"],
                ["NM1", "PR", "2", "L.A. CARE HEALTH PLAN", "", "", "", "", "PI", "LACARE"]]
    body += [["HL", "1", "", "20", "1"], ["NM1", "PR", "2", "L.A. CARE HEALTH PLAN", "", "", "", "", "PI", "LACARE"],
             ["HL", "2", "1", "21", "1"], ["NM1", "1P", "2", "CALHUB HUB", "", "", "", "", "XX", "1234567893"]]
    for number, segments in enumerate(members, start=3):
        body += [["HL", str(number), "2", "22", "0"], *segments]
    return body


def make_271(*sets: list[list[str]], control: int = 900) -> str:
    """A 271 interchange from L.A. Care of these transaction sets."""
    spec = EnvelopeSpec(sender=Party("ZZ", "LACARE", "LACARE"), receiver=Party("ZZ", "CALHUB", "CALHUB"),
                        interchange_control_number=control, group_control_number=control, functional_code="HB",
                        version="005010X279A1", created=datetime(2026, 3, 2, 9, 0))
    return build_interchange(spec, list(sets), line_breaks=True)


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    """The eligibility service on SQLite and the in-process bus, its clock fixed at NOW."""
    async with service_harness([definition()], tmp_path, keys=KEYS) as harness:
        clock = FixedClock(NOW)
        harness.runtimes["eligibility"].ports["clock"] = clock
        yield Kit(harness, clock)


@pytest.fixture
async def pg_kit(tmp_path: Path, postgres_url: str) -> AsyncIterator[Kit]:
    """The eligibility service on real PostgreSQL (an isolated schema) and the in-process bus."""
    async with service_harness([definition()], tmp_path, keys=KEYS, database_url=postgres_url) as harness:
        clock = FixedClock(NOW)
        harness.runtimes["eligibility"].ports["clock"] = clock
        yield Kit(harness, clock)


@pytest.fixture
async def kafka_kit(tmp_path: Path, postgres_url: str, kafka_bootstrap: str,
                    kafka_topic_prefix: str) -> AsyncIterator[Kit]:
    """The eligibility service on real PostgreSQL and real Kafka (topics under a unique prefix, deleted after)."""
    from shared.bus.kafka import KafkaBus

    bus = KafkaBus(bootstrap_servers=kafka_bootstrap, topic_prefix=kafka_topic_prefix, client_id="eligibility-test")
    async with service_harness([definition()], tmp_path, keys=KEYS, database_url=postgres_url, bus=bus) as harness:
        clock = FixedClock(NOW)
        harness.runtimes["eligibility"].ports["clock"] = clock
        yield Kit(harness, clock)


@pytest.fixture
def harness_keys() -> dict[str, Any]:
    """The test API keys, for tests that start their own harness."""
    return dict(KEYS)
