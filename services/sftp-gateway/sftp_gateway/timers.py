"""Timers of the gateway: referral-file flushes, monthly RTF/OTF runs and the expected-file calendar.

`ensure_timers` (at start and after a profile reload) keeps one pending timer per schedule line; each
handler schedules its successor in the same transaction, so a restart loses no run and no deadline.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from sftp_gateway.domain.calendar import monthly_run_at, next_deadline, previous_deadline, previous_month
from sftp_gateway.domain.profile import Expectation, Profile
from sftp_gateway.handlers import REFERRAL_FLUSH
from sftp_gateway.ports import gateway_ports
from sftp_gateway.repository import SftpGatewayUnitOfWork
from sftp_gateway.service import SOURCE, flush_referral_file, generate_return_file
from shared.contracts.gateway import FileKind, FileLate
from shared.envelope import new_event
from shared.scheduler import DueTimer, TimerHandlerRegistry, TimerStatus, cancel, schedule

timers: TimerHandlerRegistry[SftpGatewayUnitOfWork] = TimerHandlerRegistry()

RETURN_FILE = "return_file.generate"
EXPECTED_FILE = "calendar.expected"


@dataclass(frozen=True)
class Wanted:
    """A timer a profile asks for."""

    kind: str
    subject: str
    payload: dict[str, Any]

    def rule(self) -> str:
        return str(self.payload.get("rule", ""))


def _rule_digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def wanted_timers(profile: Profile) -> list[Wanted]:
    """Every schedule line of a profile as (kind, subject, payload with a digest of the rule)."""
    wanted: list[Wanted] = []
    for kind in (FileKind.RTF, FileKind.OTF):
        run = getattr(profile.outbound, kind.value)
        if run is not None:
            wanted.append(Wanted(RETURN_FILE, f"{profile.mcp_code}:{kind.value}",
                                 {"mcp_code": profile.mcp_code, "kind": kind.value,
                                  "day_of_month": run.day_of_month, "hour": run.hour,
                                  "rule": _rule_digest(run.model_dump())}))
    for index, expectation in enumerate(profile.calendar):
        wanted.append(Wanted(EXPECTED_FILE, f"{profile.mcp_code}:{expectation.kind.value}:{index}",
                             {"mcp_code": profile.mcp_code, "index": index,
                              "expectation": expectation.model_dump(mode="json"),
                              "rule": _rule_digest(expectation.model_dump(mode="json"))}))
    return wanted


def _first_due(wanted: Wanted, now: datetime) -> datetime:
    if wanted.kind == RETURN_FILE:
        return monthly_run_at(wanted.payload["day_of_month"], wanted.payload["hour"], now)
    return next_deadline(Expectation.model_validate(wanted.payload["expectation"]), now)


async def ensure_timers(uow: SftpGatewayUnitOfWork, profiles: list[Profile], now: datetime) -> int:
    """Schedule what the profiles ask for and is not pending yet; a changed rule replaces its timer; timers of
    lines no profile has any more are cancelled. Returns how many timers were scheduled. The caller commits."""
    timer = uow.tables.timer
    rows = await uow.session.execute(select(timer.c.kind, timer.c.subject, timer.c.payload).where(
        timer.c.kind.in_([RETURN_FILE, EXPECTED_FILE]), timer.c.status == TimerStatus.PENDING.value))
    pending = {(r.kind, r.subject): r.payload for r in rows}
    scheduled = 0
    wanted_keys = set()
    for profile in profiles:
        for wanted in wanted_timers(profile):
            key = (wanted.kind, wanted.subject)
            wanted_keys.add(key)
            current = pending.get(key)
            if current is not None and current.get("rule") == wanted.rule():
                continue
            await schedule(uow.session, uow.tables, kind=wanted.kind, subject=wanted.subject,
                           due_at=_first_due(wanted, now), payload=wanted.payload, replace=current is not None)
            scheduled += 1
    for kind, subject in set(pending) - wanted_keys:
        await cancel(uow.session, uow.tables, kind, subject)
    return scheduled


@timers.handles(REFERRAL_FLUSH)
async def flush_referrals(due: DueTimer, uow: SftpGatewayUnitOfWork) -> None:
    """Write the MCP's referral file with every request not sent yet."""
    await flush_referral_file(uow, due.payload["mcp_code"])


@timers.handles(RETURN_FILE)
async def generate_monthly(due: DueTimer, uow: SftpGatewayUnitOfWork) -> None:
    """Generate last month's RTF or OTF, then schedule next month's run."""
    ports = gateway_ports(uow)
    mcp_code, kind = due.payload["mcp_code"], FileKind(due.payload["kind"])
    if ports.profiles.get(mcp_code) is not None:
        await generate_return_file(uow, kind, mcp_code, previous_month(due.due_at), source="scheduled")
    await schedule(uow.session, uow.tables, kind=RETURN_FILE, subject=due.subject,
                   due_at=monthly_run_at(due.payload["day_of_month"], due.payload["hour"], due.due_at),
                   payload=due.payload)


@timers.handles(EXPECTED_FILE)
async def check_expected_file(due: DueTimer, uow: SftpGatewayUnitOfWork) -> None:
    """At a deadline: if no file of the kind arrived since the previous deadline, raise file.late."""
    expectation = Expectation.model_validate(due.payload["expectation"])
    mcp_code = due.payload["mcp_code"]
    deadline = due.due_at
    since = previous_deadline(expectation, deadline)
    if await uow.files.arrivals(mcp_code, expectation.kind.value, since, deadline) == 0:
        uow.record(new_event(FileLate(mcp_code=mcp_code, kind=expectation.kind, expected_by=deadline),
                             subject=f"{mcp_code}:{expectation.kind.value}", source=SOURCE))
    await schedule(uow.session, uow.tables, kind=EXPECTED_FILE, subject=due.subject,
                   due_at=next_deadline(expectation, deadline), payload=due.payload)
