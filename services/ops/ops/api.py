"""JSON API of the ops service under /v1/ops: journal, timelines, dead letters and replay, lag, flow, health, SLA
boards, alert rules, destinations and history. Every route needs the `ops` scope of a hub key."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ops.domain.alerts import METRICS, Comparator, Metric
from ops.domain.boards import Boards
from ops.monitor import OpsMonitor, settings_of
from ops.repository import JournalFilter, OpsUnitOfWork, aware
from ops.service import (
    RuleInput,
    add_destination,
    compute_boards,
    create_rule,
    destinations,
    disable_rule,
    discard_dead_letter,
    now_utc,
    read_entry,
    remove_destination,
    replay_dead_letters,
    replay_outcomes,
    timeline,
    timeline_query,
    trace_url,
)
from shared.app import runtime_of
from shared.auth import OPS_SCOPE, Caller, require_scopes
from shared.db import read_one_snapshot
from shared.problems import FieldError, Problem, problem_responses, validation_problem
from shared.runtime import ServiceRuntime

router = APIRouter(prefix="/v1/ops", tags=["ops"])


async def ops_caller(caller: Annotated[Caller, Depends(require_scopes(OPS_SCOPE))]) -> Caller:
    """The caller, if it is the hub's and holds the `ops` scope (ops data spans every tenant)."""
    if not caller.is_hub:
        raise Problem(403, "ops-hub-only", "Ops is for the hub", "The ops console and API serve hub keys only.")
    return caller


OpsCaller = Annotated[Caller, Depends(ops_caller)]


def ops_runtime(request: Request) -> ServiceRuntime:
    """The ops service's runtime."""
    return runtime_of(request, "ops")


Runtime = Annotated[ServiceRuntime, Depends(ops_runtime)]


def monitor_of(runtime: ServiceRuntime) -> OpsMonitor:
    """The runtime's monitor (built by its background part)."""
    monitor = runtime.state.get("monitor")
    if not isinstance(monitor, OpsMonitor):
        monitor = OpsMonitor(runtime)
        runtime.state["monitor"] = monitor
    return monitor


def _uow(runtime: ServiceRuntime) -> OpsUnitOfWork:
    uow = runtime.uow()
    assert isinstance(uow, OpsUnitOfWork)
    return uow


def _cursor(value: str | None, field: str = "query.cursor") -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise validation_problem([FieldError(field=field, rule="cursor",
                                             message="Not a cursor from this listing.")]) from None


# ----------------------------------------------------------------------------------------------- models

class JournalEntryOut(BaseModel):
    """Envelope metadata of one journaled message (never the payload)."""

    id: UUID
    topic: str
    partition: int
    offset: int
    dead_letter: bool
    event_id: UUID | None
    event_type: str | None
    schema_version: int | None
    occurred_at: datetime | None
    journaled_at: datetime
    source: str | None
    subject: str | None
    member_id: str | None
    correlation_id: UUID | None
    causation_id: UUID | None
    trace_id: str | None
    trace_url: str | None
    mcp_code: str | None
    replayed_from: str | None


class JournalPage(BaseModel):
    """A page of journal entries, newest first."""

    items: list[JournalEntryOut]
    next_cursor: str | None


class JournalEntryDetail(JournalEntryOut):
    """An entry with its message: the payload may hold PHI (reads are audited)."""

    traceparent: str | None
    references: dict[str, str]
    headers: dict[str, str]
    payload: Any = Field(description="The message value as JSON, or as text when it is not JSON.")


class TimelineOut(BaseModel):
    """A story across services, oldest first."""

    query: dict[str, str]
    count: int
    truncated: bool
    items: list[JournalEntryOut]


def entry_out(row: Any, template: str) -> JournalEntryOut:
    """The API shape of a journal row."""
    return JournalEntryOut(
        id=row.id, topic=row.topic, partition=row.log_partition, offset=row.log_offset, dead_letter=row.dead_letter,
        event_id=row.event_id, event_type=row.event_type, schema_version=row.schema_version,
        occurred_at=aware(row.occurred_at), journaled_at=aware(row.journaled_at) or row.journaled_at,
        source=row.source, subject=row.subject, member_id=row.member_id, correlation_id=row.correlation_id,
        causation_id=row.causation_id, trace_id=row.trace_id, trace_url=trace_url(template, row.trace_id),
        mcp_code=row.mcp_code, replayed_from=row.replayed_from)


def payload_json(value: bytes) -> Any:
    """The message value as JSON when it is JSON, else as (lenient) text."""
    import json

    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return bytes(value).decode("utf-8", "replace")


class DeadLetterOut(BaseModel):
    """A dead letter: where it came from, why it failed, and what was done about it."""

    id: UUID
    entry_id: UUID
    dlq_topic: str
    position: str
    original_topic: str
    original_partition: int | None
    original_offset: int | None
    consumer_group: str
    error_type: str
    error: str
    attempts: int
    event_id: UUID | None
    event_type: str | None
    subject: str | None
    dead_lettered_at: datetime
    status: str
    replay_count: int
    last_replayed_at: datetime | None
    resolved_at: datetime | None
    discard_reason: str | None
    replay_outcome: str | None = Field(None, description="For replayed ones: handled, in_flight, queued or "
                                       "failed_again.")


class DeadLetterPage(BaseModel):
    """A page of dead letters, newest first."""

    items: list[DeadLetterOut]
    next_cursor: str | None


class DeadLetterDetail(DeadLetterOut):
    """A dead letter with its event metadata and retry history (earlier dead letters of the same event)."""

    entry: JournalEntryOut
    history: list[DeadLetterOut]


def dead_letter_out(row: Any, outcome: str | None = None) -> DeadLetterOut:
    """The API shape of a dead-letter row."""
    return DeadLetterOut(
        id=row.id, entry_id=row.entry_id, dlq_topic=row.dlq_topic, position=row.position,
        original_topic=row.original_topic, original_partition=row.original_partition,
        original_offset=row.original_offset, consumer_group=row.consumer_group, error_type=row.error_type,
        error=row.error, attempts=row.attempts, event_id=row.event_id, event_type=row.event_type,
        subject=row.subject, dead_lettered_at=aware(row.dead_lettered_at) or row.dead_lettered_at,
        status=row.status, replay_count=row.replay_count, last_replayed_at=aware(row.last_replayed_at),
        resolved_at=aware(row.resolved_at), discard_reason=row.discard_reason, replay_outcome=outcome)


class ReplayIn(BaseModel):
    """Dead letters to replay."""

    model_config = ConfigDict(extra="forbid")

    ids: list[UUID] = Field(min_length=1, max_length=500)


class ReplayOut(BaseModel):
    """Per dead letter: replayed, not_found or not_pending."""

    results: list[dict[str, Any]]
    replayed: int


class DiscardIn(BaseModel):
    """Why a dead letter is given up on."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500)


class RuleIn(BaseModel):
    """A new alert rule."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    metric: Metric
    threshold: Decimal
    comparator: Comparator | None = Field(None, description="Default: the metric's usual direction.")
    scope: str | None = Field(None, max_length=200, description="Only this key (MCP code, group, service).")
    for_minutes: int = Field(0, ge=0, le=10080, description="Breach must last this long before it fires.")


class RuleOut(BaseModel):
    """An alert rule."""

    id: str
    name: str
    metric: str
    comparator: str
    threshold: Decimal
    scope: str | None
    for_minutes: int
    enabled: bool
    created_at: datetime
    disabled_at: datetime | None


class AlertEventOut(BaseModel):
    """One alert notification in the history."""

    id: UUID
    rule_id: str
    rule: str
    metric: str
    key: str
    kind: str
    value: Decimal | None
    threshold: Decimal
    occurred_at: datetime
    deliveries: int
    delivered: int


class DestinationIn(BaseModel):
    """A webhook URL for alert notifications."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    description: str | None = Field(None, max_length=200)


def rule_out(row: Any) -> RuleOut:
    """The API shape of a rule row."""
    return RuleOut(id=row.id, name=row.name, metric=row.metric, comparator=row.comparator,
                   threshold=Decimal(row.threshold), scope=row.scope, for_minutes=row.for_minutes,
                   enabled=row.enabled, created_at=aware(row.created_at) or row.created_at,
                   disabled_at=aware(row.disabled_at))


def boards_json(boards: Boards) -> dict[str, Any]:
    """The boards as JSON-ready data."""
    return {
        "generated_at": boards.generated_at.isoformat(),
        "windows": {"decision_due_soon_hours": boards.due_soon_hours,
                    "expiring_within_days": boards.expiring_within_days,
                    "files_window_days": boards.files_window_days},
        "timely_payment_targets": {"30": boards.target_30, "90": boards.target_90},
        "decisions": {mcp: {"overdue": [asdict(i) for i in c.overdue], "due_soon": [asdict(i) for i in c.due_soon]}
                      for mcp, c in boards.decisions.items()},
        "expiring": {mcp: [asdict(i) for i in items] for mcp, items in boards.expiring.items()},
        "claims": {mcp: {"aging": s.aging, "outstanding": s.outstanding,
                         "outstanding_over_30": s.outstanding_over_30, "outstanding_over_90": s.outstanding_over_90,
                         "timely_payment": {**asdict(s.timely), "share_30": s.timely.share(30),
                                            "share_90": s.timely.share(90),
                                            "meets_30": s.meets(30, boards.target_30),
                                            "meets_90": s.meets(90, boards.target_90)}}
                   for mcp, s in boards.claims.items()},
        "files": {mcp: asdict(f) for mcp, f in boards.files.items()},
    }


async def flow_data(runtime: ServiceRuntime, now: datetime) -> dict[str, Any]:
    """Events per minute per topic over the flow window, and the rate of the last five minutes."""
    settings = settings_of(runtime)
    window = settings.flow_window_minutes
    start = (now - timedelta(minutes=window - 1)).replace(second=0, microsecond=0)
    async with _uow(runtime) as uow:
        rows = await uow.journal.flow(start)
        pending = await uow.dead_letters.pending_counts()
    minutes = [start + timedelta(minutes=i) for i in range(window)]
    index = {minute: i for i, minute in enumerate(minutes)}
    series: dict[str, list[int]] = defaultdict(lambda: [0] * window)
    for topic, minute, count in rows:
        position = index.get(minute.replace(second=0, microsecond=0))
        if position is not None:
            series[topic][position] += count
    topics = [{"topic": topic, "per_minute": counts, "total": sum(counts),
               "last_5_minutes_per_minute": round(sum(counts[-5:]) / 5, 2)}
              for topic, counts in sorted(series.items())]
    return {"window_minutes": window, "from": start.isoformat(), "topics": topics,
            "dead_letters_pending": [{"group": g, "topic": t, "count": n} for g, t, n in pending]}


# ------------------------------------------------------------------------------------------------ routes

@router.get("/journal", response_model=JournalPage, summary="Search the event journal",
            responses=problem_responses(401, 403, 422))
async def search_journal(
    runtime: Runtime, caller: OpsCaller,
    event_type: Annotated[str | None, Query(max_length=100)] = None,
    topic: Annotated[str | None, Query(max_length=200)] = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
    member_id: Annotated[str | None, Query(pattern=r"^mbr_[0-9a-f]{24}$")] = None,
    correlation_id: UUID | None = None,
    trace_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
    mcp_code: Annotated[str | None, Query(max_length=50)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    dead_letters: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> JournalPage:
    """Journal entries (metadata only), newest first; filters combine."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise validation_problem([FieldError(field=f"query.{name}", rule="timezone",
                                                 message="Give a time with its UTC offset.")])
    where = JournalFilter(event_type=event_type, topic=topic, subject=subject, member_id=member_id,
                          correlation_id=correlation_id, trace_id=trace_id, mcp_code=mcp_code, since=since,
                          until=until, dead_letters=dead_letters)
    async with _uow(runtime) as uow:
        rows = await uow.journal.search(where, limit=limit + 1, before=_cursor(cursor))
    template = settings_of(runtime).trace_url_template
    more = len(rows) > limit
    rows = rows[:limit]
    return JournalPage(items=[entry_out(r, template) for r in rows],
                       next_cursor=str(rows[-1].id) if more and rows else None)


@router.get("/journal/{entry_id}", response_model=JournalEntryDetail, summary="One journal entry with its payload",
            responses=problem_responses(401, 403, 404))
async def get_entry(entry_id: UUID, runtime: Runtime, caller: OpsCaller) -> JournalEntryDetail:
    """The entry, its headers and payload. The payload may hold PHI: every read is audited."""
    async with _uow(runtime) as uow:
        entry, payload, references = await read_entry(uow, entry_id, caller, now_utc())
        await uow.commit()
    base = entry_out(entry, settings_of(runtime).trace_url_template)
    headers = {str(k): str(v) for k, v in (payload.headers if payload else [])}
    return JournalEntryDetail(**base.model_dump(), traceparent=entry.traceparent, references=dict(references),
                              headers=headers, payload=payload_json(payload.value) if payload else None)


@router.get("/timeline", response_model=TimelineOut, summary="A referral's, claim's or member's story",
            responses=problem_responses(401, 403, 422))
async def get_timeline(
    runtime: Runtime, caller: OpsCaller,
    referral_id: Annotated[str | None, Query(max_length=200)] = None,
    claim_id: Annotated[str | None, Query(max_length=200)] = None,
    subject: Annotated[str | None, Query(max_length=200, description="Any aggregate id")] = None,
    member_id: Annotated[str | None, Query(max_length=64, description="Internal member id (never a CIN)")] = None,
    correlation_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 500,
) -> TimelineOut:
    """Every event of one story across services, oldest first, each with its trace link."""
    query = timeline_query(referral_id=referral_id, claim_id=claim_id, subject=subject, member_id=member_id,
                           correlation_id=correlation_id)
    async with _uow(runtime) as uow:
        rows = await timeline(uow, query, limit=limit + 1)
    template = settings_of(runtime).trace_url_template
    asked = {k: str(v) for k, v in (("subject", query.subject), ("member_id", query.member_id),
                                    ("correlation_id", query.correlation_id)) if v}
    return TimelineOut(query=asked, count=min(len(rows), limit), truncated=len(rows) > limit,
                       items=[entry_out(r, template) for r in rows[:limit]])


@router.get("/dead-letters", response_model=DeadLetterPage, summary="Dead letters",
            responses=problem_responses(401, 403, 422))
async def list_dead_letters(
    runtime: Runtime, caller: OpsCaller,
    status: Literal["pending", "replayed", "discarded"] | None = "pending",
    topic: Annotated[str | None, Query(max_length=200, description="Original topic")] = None,
    group: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> DeadLetterPage:
    """Dead letters newest first (pending by default), with the outcome of replayed ones."""
    async with _uow(runtime) as uow:
        rows = await uow.dead_letters.listing(status=status, topic=topic, group=group, limit=limit + 1,
                                           before=_cursor(cursor))
        more = len(rows) > limit
        rows = rows[:limit]
        outcomes = await replay_outcomes(uow, runtime.bus, rows)
    return DeadLetterPage(items=[dead_letter_out(r, outcomes.get(r.id)) for r in rows],
                          next_cursor=str(rows[-1].id) if more and rows else None)


@router.get("/dead-letters/{dead_letter_id}", response_model=DeadLetterDetail, summary="One dead letter",
            responses=problem_responses(401, 403, 404))
async def get_dead_letter(dead_letter_id: UUID, runtime: Runtime, caller: OpsCaller) -> DeadLetterDetail:
    """A dead letter with its event's metadata and its retry history."""
    async with _uow(runtime) as uow:
        row = await uow.dead_letters.get(dead_letter_id)
        if row is None:
            raise Problem(404, "dead-letter-not-found", "Dead letter not found")
        found = await uow.journal.get(row.entry_id)
        history = await uow.dead_letters.history(row.event_id, row.consumer_group, row.entry_id)
        outcomes = await replay_outcomes(uow, runtime.bus, history)
    assert found is not None
    template = settings_of(runtime).trace_url_template
    base = dead_letter_out(row, outcomes.get(row.id))
    return DeadLetterDetail(**base.model_dump(), entry=entry_out(found[0], template),
                            history=[dead_letter_out(h, outcomes.get(h.id)) for h in history])


@router.post("/dead-letters/replay", response_model=ReplayOut, summary="Replay dead letters",
             responses=problem_responses(401, 403, 422))
async def replay_many(body: ReplayIn, runtime: Runtime, caller: OpsCaller) -> ReplayOut:
    """Republish pending dead letters to their original topics (audited); others are reported, not replayed."""
    async with _uow(runtime) as uow:
        results = await replay_dead_letters(uow, body.ids, caller, now_utc())
        await uow.commit()
    return ReplayOut(results=[{"id": str(r.id), "outcome": r.outcome, "status": r.status} for r in results],
                     replayed=sum(r.outcome == "replayed" for r in results))


@router.post("/dead-letters/{dead_letter_id}/replay", response_model=ReplayOut, summary="Replay one dead letter",
             responses=problem_responses(401, 403, 404, 409))
async def replay_one(dead_letter_id: UUID, runtime: Runtime, caller: OpsCaller) -> ReplayOut:
    """Republish one pending dead letter; 404 if unknown, 409 if already replayed or discarded."""
    async with _uow(runtime) as uow:
        results = await replay_dead_letters(uow, [dead_letter_id], caller, now_utc())
        result = results[0]
        if result.outcome == "not_found":
            raise Problem(404, "dead-letter-not-found", "Dead letter not found")
        if result.outcome == "not_pending":
            raise Problem(409, "dead-letter-not-pending", "Dead letter is not pending",
                          f"It was already {result.status}.", status_now=result.status)
        await uow.commit()
    return ReplayOut(results=[{"id": str(result.id), "outcome": result.outcome, "status": result.status}],
                     replayed=1)


@router.post("/dead-letters/{dead_letter_id}/discard", response_model=DeadLetterOut,
             summary="Discard a dead letter with a reason", responses=problem_responses(401, 403, 404, 409, 422))
async def discard_one(dead_letter_id: UUID, body: DiscardIn, runtime: Runtime, caller: OpsCaller) -> DeadLetterOut:
    """Give up on a pending dead letter; the reason is kept and the action audited."""
    async with _uow(runtime) as uow:
        await discard_dead_letter(uow, dead_letter_id, body.reason, caller, now_utc())
        await uow.commit()
        row = await uow.dead_letters.get(dead_letter_id)
    return dead_letter_out(row)


@router.get("/lag", summary="Consumer lag per group and topic", responses=problem_responses(401, 403, 503))
async def get_lag(runtime: Runtime, caller: OpsCaller) -> dict[str, Any]:
    """End offsets minus committed offsets, per group and topic, read from the bus now (503 while the broker
    cannot be reached: lag is unknown then, not zero)."""
    monitor = monitor_of(runtime)
    try:
        sample = await monitor.sample()
    except Exception as exc:  # noqa: BLE001 - broker unreachable: say so instead of a 500
        raise Problem(503, "bus-unavailable", "The event bus cannot be reached",
                      detail=f"consumer lag is unknown while the broker is down ({type(exc).__name__})",
                      headers={"Retry-After": "10"}) from None
    rows = await monitor.lag(sample)
    return {"groups": [asdict(r) for r in rows], "errors": sample.errors,
            "dead_letter_topics": sample.dead_letter_depth}


@router.get("/flow", summary="Events per minute per topic, and dead letters pending",
            responses=problem_responses(401, 403))
async def get_flow(runtime: Runtime, caller: OpsCaller) -> dict[str, Any]:
    """Throughput over the flow window, from the journal."""
    return await flow_data(runtime, now_utc())


@router.get("/health", summary="Readiness of every service", responses=problem_responses(401, 403))
async def get_health(runtime: Runtime, caller: OpsCaller) -> dict[str, Any]:
    """Each service's readiness, outbox backlog and scheduler backlog; unreachable services are reported."""
    health = await monitor_of(runtime).health()
    return {"services": [asdict(h) for h in health], "ready": all(h.ready for h in health)}


@router.get("/boards", summary="SLA boards", responses=problem_responses(401, 403))
async def get_boards(runtime: Runtime, caller: OpsCaller) -> dict[str, Any]:
    """Decisions overdue and due soon, expiring authorizations, claims aging and timely payment, files; per MCP."""
    async with _uow(runtime) as uow:
        await read_one_snapshot(uow.session)  # every board from the same moment of the projections and journal
        boards = await compute_boards(uow, settings_of(runtime), now_utc())
    return boards_json(boards)


@router.get("/alerts/metrics", summary="Metrics an alert rule can watch", responses=problem_responses(401, 403))
async def alert_metrics(caller: OpsCaller) -> list[dict[str, str]]:
    """Each metric with its label, key kind and usual comparator."""
    return [{"metric": metric.value, "label": spec.label, "key": spec.key, "comparator": spec.comparator.value}
            for metric, spec in METRICS.items()]


@router.get("/alerts/rules", response_model=list[RuleOut], summary="Alert rules",
            responses=problem_responses(401, 403))
async def list_rules(runtime: Runtime, caller: OpsCaller) -> list[RuleOut]:
    """Every rule, newest first (disabled ones included)."""
    async with _uow(runtime) as uow:
        return [rule_out(r) for r in await uow.alerts.rule_rows()]


@router.post("/alerts/rules", response_model=RuleOut, status_code=201, summary="Create an alert rule",
             responses=problem_responses(401, 403, 422))
async def post_rule(body: RuleIn, runtime: Runtime, caller: OpsCaller) -> RuleOut:
    """Store a rule; it is evaluated from the next monitor round."""
    async with _uow(runtime) as uow:
        rule = await create_rule(uow, RuleInput(name=body.name, metric=body.metric.value, threshold=body.threshold,
                                                comparator=body.comparator.value if body.comparator else None,
                                                scope=body.scope, for_minutes=body.for_minutes), caller, now_utc())
        await uow.commit()
        rows = [r for r in await uow.alerts.rule_rows() if r.id == rule.id]
    return rule_out(rows[0])


@router.delete("/alerts/rules/{rule_id}", status_code=204, summary="Disable an alert rule",
               responses=problem_responses(401, 403, 404))
async def delete_rule(rule_id: str, runtime: Runtime, caller: OpsCaller) -> None:
    """Disable a rule; what it was firing resolves at the next round."""
    async with _uow(runtime) as uow:
        await disable_rule(uow, rule_id, caller, now_utc())
        await uow.commit()


@router.get("/alerts/history", response_model=list[AlertEventOut], summary="Alert notifications",
            responses=problem_responses(401, 403, 422))
async def alert_history(runtime: Runtime, caller: OpsCaller, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                        cursor: Annotated[str | None, Query(max_length=64)] = None) -> list[AlertEventOut]:
    """Firing and resolved notifications, newest first, with their webhook delivery counts."""
    async with _uow(runtime) as uow:
        rows = await uow.alerts.history(limit, _cursor(cursor))
    return [AlertEventOut(id=r.id, rule_id=r.rule_id, rule=r.name, metric=r.metric, key=r.key, kind=r.kind,
                          value=Decimal(r.value) if r.value is not None else None, threshold=Decimal(r.threshold),
                          occurred_at=aware(r.occurred_at) or r.occurred_at, deliveries=int(r.deliveries or 0),
                          delivered=int(r.delivered or 0)) for r in rows]


@router.post("/alerts/evaluate", summary="Run a monitor round now", responses=problem_responses(401, 403))
async def evaluate_now(runtime: Runtime, caller: OpsCaller) -> dict[str, Any]:
    """Sample, evaluate every rule and send what changed, without waiting for the next round."""
    report = await monitor_of(runtime).run_once()
    return {"at": report.at.isoformat(), "transitions": [
        {"rule_id": t.rule_id, "key": t.key, "kind": t.kind.value, "value": str(t.value) if t.value is not None
         else None} for t in report.transitions], "bus_errors": report.bus_errors}


@router.get("/alerts/destinations", summary="Alert webhook destinations", responses=problem_responses(401, 403))
async def list_destinations(runtime: Runtime, caller: OpsCaller) -> list[dict[str, Any]]:
    """Active destinations and their delivery counts (secrets are never shown again)."""
    async with _uow(runtime) as uow:
        rows = await destinations(uow)
    return [{"id": r.id, "url": r.url, "description": r.description, "created_at": aware(r.created_at),
             "delivered": int(r.delivered or 0), "failed": int(r.failed or 0)} for r in rows]


@router.post("/alerts/destinations", status_code=201, summary="Add an alert webhook destination",
             responses=problem_responses(401, 403, 422))
async def post_destination(body: DestinationIn, runtime: Runtime, caller: OpsCaller) -> dict[str, Any]:
    """Register an https URL; the answer carries the HMAC signing secret, once (see shared/webhooks.py)."""
    async with _uow(runtime) as uow:
        subscription_id, secret = await add_destination(uow, body.url, body.description, caller,
                                                        settings_of(runtime), now_utc())
        await uow.commit()
    return {"id": subscription_id, "url": body.url, "secret": secret}


@router.delete("/alerts/destinations/{subscription_id}", status_code=204, summary="Remove an alert destination",
               responses=problem_responses(401, 403, 404))
async def delete_destination(subscription_id: str, runtime: Runtime, caller: OpsCaller) -> None:
    """Stop sending alerts to a destination; its delivery log is kept."""
    async with _uow(runtime) as uow:
        await remove_destination(uow, subscription_id[:40], caller, now_utc())
        await uow.commit()
