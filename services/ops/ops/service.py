"""Use cases of the ops service, shared by the JSON API, the console and the timers."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, select, update

from ops import models as m
from ops.domain.alerts import METRICS, AlertRule, Comparator, Metric, Transition, evaluate
from ops.domain.boards import Boards, claims_board, decision_board, expiring_board, file_board, pacific_date
from ops.repository import DeadLetterStatus, OpsUnitOfWork, aware
from ops.settings import OpsSettings
from shared.auth import Caller, record_audit
from shared.bus.message import IncomingMessage, OutgoingMessage
from shared.bus.replay import HEADER_REPLAYED_FROM, replay_message
from shared.identity import member_id_for
from shared.ids import uuid7
from shared.problems import FieldError, Problem, validation_problem
from shared.webhooks import Audience, check_url, enqueue_webhook, new_secret

log = logging.getLogger("calhub.ops.service")

ALERT_FIRING = "ops.alert.firing"
ALERT_RESOLVED = "ops.alert.resolved"
ALERT_EVENT_TYPES = (ALERT_FIRING, ALERT_RESOLVED)
TIMELY_WINDOW = timedelta(days=365)  # claims submitted in the last year count towards timely payment
CIN = re.compile(r"^[0-9]{8}[A-Z]$")
MEMBER_ID = re.compile(r"^mbr_[0-9a-f]{24}$")


def now_utc() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


# ------------------------------------------------------------------------------------------ dead letters

@dataclass(frozen=True)
class ReplayResult:
    """What happened to one dead letter asked to be replayed."""

    id: UUID
    outcome: str  # replayed | not_found | not_pending
    status: str | None = None


def _split_position(position: str) -> tuple[str, int, int]:
    topic, partition, offset = position.rsplit("/", 2)
    return topic, int(partition), int(offset)


def _replay_of(row: Any, payload: Any) -> OutgoingMessage:
    topic, partition, offset = _split_position(row.position)
    headers = tuple((str(k), str(v).encode()) for k, v in payload.headers)
    incoming = IncomingMessage(topic=topic, partition=partition, offset=offset, key=payload.message_key,
                               value=bytes(payload.value), headers=headers)
    try:
        return replay_message(incoming)
    except ValueError:
        # A dead letter written without its origin header (by hand, or an older producer): the journal read the
        # origin from the topic name; address it there and keep the same provenance header.
        kept = tuple(h for h in headers if not h[0].startswith("calhub-dlq-"))
        return OutgoingMessage(topic=row.original_topic, key=incoming.key, value=incoming.value,
                               headers=kept + ((HEADER_REPLAYED_FROM, row.position.encode()),))


async def replay_dead_letters(uow: OpsUnitOfWork, ids: Sequence[UUID], caller: Caller | None,
                              now: datetime) -> list[ReplayResult]:
    """Republish pending dead letters to their original topics through the ops outbox, mark them replayed and
    audit each, all in the caller's transaction (the edge commits; the relay publishes after commit).

    This is the one place a service writes to topics it does not own (docs/decisions/0090).
    """
    rows = {row.id: row for row in await uow.dead_letters.many(ids, for_update=True)}
    results: list[ReplayResult] = []
    outbox: list[dict[str, Any]] = []
    replayed: list[UUID] = []
    for dead_letter_id in dict.fromkeys(ids):
        row = rows.get(dead_letter_id)
        if row is None:
            results.append(ReplayResult(dead_letter_id, "not_found"))
            continue
        if row.status != DeadLetterStatus.PENDING:
            results.append(ReplayResult(dead_letter_id, "not_pending", row.status))
            continue
        payload = await uow.dead_letters.message(row.entry_id)
        if payload is None:
            results.append(ReplayResult(dead_letter_id, "not_found"))
            continue
        message = _replay_of(row, payload)
        # The outbox row gets its own id: its event_id column is unique, and the same event may be replayed
        # again later (after failing again) or for two groups at once. The message keeps the event's own id.
        outbox.append({"event_id": uuid7(), "topic": message.topic, "key": message.key, "value": message.value,
                       "headers": [[k, v.decode("utf-8", "replace")] for k, v in message.headers],
                       "created_at": now})
        replayed.append(dead_letter_id)
        results.append(ReplayResult(dead_letter_id, "replayed", DeadLetterStatus.REPLAYED))
        await record_audit(uow.session, m.audit_event, action="dead_letter.replayed", resource_type="dead_letter",
                           resource_id=str(dead_letter_id), caller=caller, occurred_at=now,
                           detail={"original_topic": row.original_topic, "consumer_group": row.consumer_group,
                                   "event_type": row.event_type, "event_id": row.event_id})
    if outbox:
        await uow.session.execute(insert(uow.tables.outbox), outbox)
        await uow.dead_letters.mark_replayed(replayed, now, caller.key_id if caller else None)
        log.info("dead letters replayed", extra={"count": len(replayed)})
    return results


async def discard_dead_letter(uow: OpsUnitOfWork, dead_letter_id: UUID, reason: str, caller: Caller | None,
                              now: datetime) -> None:
    """Give up on a pending dead letter with a reason (audited); raises a 404 or 409 Problem."""
    reason = reason.strip()
    if not 3 <= len(reason) <= 500:
        raise validation_problem([FieldError(field="reason", rule="length",
                                             message="Give a reason of 3 to 500 characters.")])
    row = await uow.dead_letters.get(dead_letter_id, for_update=True)
    if row is None:
        raise Problem(404, "dead-letter-not-found", "Dead letter not found")
    if row.status != DeadLetterStatus.PENDING:
        raise Problem(409, "dead-letter-not-pending", "Dead letter is not pending",
                      f"It was already {row.status}.", status_now=row.status)
    await uow.dead_letters.discard(dead_letter_id, reason, now, caller.key_id if caller else None)
    # The reason is free text and may name a member: the audit detail keeps its length, the row keeps the text.
    await record_audit(uow.session, m.audit_event, action="dead_letter.discarded", resource_type="dead_letter",
                       resource_id=str(dead_letter_id), caller=caller, occurred_at=now,
                       detail={"original_topic": row.original_topic, "consumer_group": row.consumer_group,
                               "reason_length": len(reason)})


async def replay_outcomes(uow: OpsUnitOfWork, bus: Any, rows: Sequence[Any]) -> dict[UUID, str]:
    """For replayed dead letters: `failed_again`, `handled` (the group committed past the replay), `in_flight`
    (journaled, not yet committed) or `queued` (not yet seen on the topic)."""
    replayed = [r for r in rows if r.status == DeadLetterStatus.REPLAYED]
    if not replayed:
        return {}
    replays = await uow.dead_letters.replays_of([r.position for r in replayed])
    outcomes: dict[UUID, str] = {}
    for row in replayed:
        since = aware(row.last_replayed_at) or now_utc()
        if row.event_id is not None and await uow.dead_letters.later_failures(row.event_id, row.consumer_group,
                                                                              since):
            outcomes[row.id] = "failed_again"
            continue
        found: list[Any] = replays.get(row.position) or []
        if not found:
            outcomes[row.id] = "queued"
            continue
        outcomes[row.id] = "in_flight"
        for replay in found:
            try:
                committed = await _maybe(bus.committed(row.consumer_group, replay.topic))
            except Exception:  # noqa: BLE001 - the broker is away: say what is known
                break
            if int(committed.get(replay.log_partition, 0)) > int(replay.log_offset):
                outcomes[row.id] = "handled"
                break
    return outcomes


async def _maybe(value: Any) -> Any:
    import inspect

    return await value if inspect.isawaitable(value) else value


# ------------------------------------------------------------------------------------------- timelines

@dataclass(frozen=True)
class TimelineQuery:
    """One of: an aggregate id (referral, claim, authorization, file...), an internal member id, a correlation id."""

    subject: str | None = None
    member_id: str | None = None
    correlation_id: UUID | None = None

    @property
    def empty(self) -> bool:
        """True when nothing was asked."""
        return not (self.subject or self.member_id or self.correlation_id)


def timeline_query(*, referral_id: str | None = None, claim_id: str | None = None, subject: str | None = None,
                   member_id: str | None = None, correlation_id: str | None = None) -> TimelineQuery:
    """Validate timeline parameters: exactly one, well formed; raises a 422 Problem naming the field and rule."""
    given = {name: value for name, value in (("referral_id", referral_id), ("claim_id", claim_id),
                                             ("subject", subject), ("member_id", member_id),
                                             ("correlation_id", correlation_id)) if value}
    if len(given) != 1:
        raise validation_problem([FieldError(field="query", rule="exactly_one",
                                             message="Give exactly one of referral_id, claim_id, subject, "
                                                     "member_id, correlation_id.")])
    name, value = next(iter(given.items()))
    value = value.strip()
    if name == "member_id":
        if not MEMBER_ID.match(value):
            raise validation_problem([FieldError(
                field="query.member_id", rule="internal_member_id",
                message="Use CalHub's internal member id (mbr_ followed by 24 hex digits), never a CIN.")])
        return TimelineQuery(member_id=value)
    if name == "correlation_id":
        try:
            return TimelineQuery(correlation_id=UUID(value))
        except ValueError:
            raise validation_problem([FieldError(field="query.correlation_id", rule="uuid",
                                                 message="A correlation id is a UUID.")]) from None
    if not value or len(value) > 200 or CIN.match(value):
        raise validation_problem([FieldError(field=f"query.{name}", rule="aggregate_id",
                                             message="An aggregate id of 1 to 200 characters (not a CIN).")])
    return TimelineQuery(subject=value)


def member_id_of_cin(cin: str) -> str:
    """The internal member id of a CIN typed into the console (the CIN itself is neither stored nor logged)."""
    value = cin.strip().upper()
    if not CIN.match(value):
        raise validation_problem([FieldError(field="cin", rule="pattern",
                                             message="A CIN is 8 digits followed by a letter.")])
    return member_id_for(value)


async def timeline(uow: OpsUnitOfWork, query: TimelineQuery, *, limit: int = 500) -> list[Any]:
    """The entries of a story, oldest first."""
    return await uow.journal.timeline(subject=query.subject, member_id=query.member_id,
                                      correlation_id=query.correlation_id, limit=limit)


async def read_entry(uow: OpsUnitOfWork, entry_id: UUID, caller: Caller | None, now: datetime,
                     ) -> tuple[Any, Any, list[tuple[str, str]]]:
    """An entry with its payload (may hold PHI: the read is audited) and its references; raises 404 Problem."""
    found = await uow.journal.get(entry_id)
    if found is None:
        raise Problem(404, "journal-entry-not-found", "Journal entry not found")
    entry, payload = found
    references = (await uow.journal.references_of([entry_id])).get(entry_id, [])
    await record_audit(uow.session, m.audit_event, action="journal.payload_read", resource_type="journal_entry",
                       resource_id=str(entry_id), caller=caller, occurred_at=now,
                       detail={"event_type": entry.event_type, "member_id": entry.member_id})
    return entry, payload, references


def trace_url(template: str, trace_id: str | None) -> str | None:
    """The trace UI link of a trace id, from the configured template."""
    return template.replace("{trace_id}", trace_id) if trace_id else None


# ---------------------------------------------------------------------------------------------- boards

async def compute_boards(uow: OpsUnitOfWork, settings: OpsSettings, now: datetime) -> Boards:
    """Every SLA board as of `now`, from the projections and the journal."""
    today = pacific_date(now)
    auths = await uow.projections.authorizations_open(today + timedelta(days=settings.expiring_within_days))
    claims = await uow.projections.claims_since(now - TIMELY_WINDOW)
    counts = await uow.journal.counts_by_type(["file.received", "file.quarantined"],
                                              now - timedelta(days=settings.files_window_days))
    return Boards(
        generated_at=now,
        decisions=decision_board(auths, now, timedelta(hours=settings.decision_due_soon_hours)),
        expiring=expiring_board(auths, today, settings.expiring_within_days),
        claims=claims_board(claims, today),
        files=file_board(counts, await uow.projections.file_expectations()),
        due_soon_hours=settings.decision_due_soon_hours,
        expiring_within_days=settings.expiring_within_days,
        files_window_days=settings.files_window_days,
        target_30=settings.timely_payment_target_30,
        target_90=settings.timely_payment_target_90,
    )


# ---------------------------------------------------------------------------------------------- alerts

@dataclass(frozen=True)
class RuleInput:
    """A new alert rule as submitted."""

    name: str
    metric: str
    threshold: str | float | Decimal
    comparator: str | None = None
    scope: str | None = None
    for_minutes: int = 0


def validate_rule(body: RuleInput) -> AlertRule:
    """An AlertRule from submitted values; raises a 422 Problem naming each bad field and rule."""
    errors: list[FieldError] = []
    name = body.name.strip()
    if not 1 <= len(name) <= 100:
        errors.append(FieldError(field="name", rule="length", message="1 to 100 characters."))
    metric: Metric | None = None
    try:
        metric = Metric(body.metric)
    except ValueError:
        errors.append(FieldError(field="metric", rule="enum",
                                 message="Must be one of: " + ", ".join(m.value for m in Metric) + "."))
    comparator = None
    if body.comparator:
        try:
            comparator = Comparator(body.comparator)
        except ValueError:
            errors.append(FieldError(field="comparator", rule="enum", message="Must be above or below."))
    try:
        threshold = Decimal(str(body.threshold).strip())
        if not threshold.is_finite() or abs(threshold) >= Decimal("1e10"):
            raise ValueError
    except (ValueError, ArithmeticError):
        threshold = Decimal(0)
        errors.append(FieldError(field="threshold", rule="number", message="A finite number below 10^10."))
    scope = (body.scope or "").strip() or None
    if scope is not None and (len(scope) > 200 or CIN.search(scope)):
        errors.append(FieldError(field="scope", rule="scope", message="An MCP code, group or service name."))
    if not 0 <= body.for_minutes <= 10080:
        errors.append(FieldError(field="for_minutes", rule="range", message="0 to 10080 minutes."))
    if errors or metric is None:
        raise validation_problem(errors)
    return AlertRule(id=f"alr_{uuid7().hex}", name=name, metric=metric,
                     comparator=comparator or METRICS[metric].comparator, threshold=threshold, scope=scope,
                     for_minutes=body.for_minutes)


async def create_rule(uow: OpsUnitOfWork, body: RuleInput, caller: Caller | None, now: datetime) -> AlertRule:
    """Validate and store a rule (audited)."""
    rule = validate_rule(body)
    await uow.alerts.add_rule(rule, now, caller.key_id if caller else None)
    await record_audit(uow.session, m.audit_event, action="alert_rule.created", resource_type="alert_rule",
                       resource_id=rule.id, caller=caller, occurred_at=now,
                       detail={"metric": rule.metric.value, "comparator": rule.comparator.value,
                               "threshold": rule.threshold})
    return rule


async def disable_rule(uow: OpsUnitOfWork, rule_id: str, caller: Caller | None, now: datetime) -> None:
    """Switch a rule off (audited); raises a 404 Problem."""
    if await uow.alerts.get_rule(rule_id) is None:
        raise Problem(404, "alert-rule-not-found", "Alert rule not found")
    await uow.alerts.disable_rule(rule_id, now)
    await record_audit(uow.session, m.audit_event, action="alert_rule.disabled", resource_type="alert_rule",
                       resource_id=rule_id, caller=caller, occurred_at=now)


async def evaluate_rules(uow: OpsUnitOfWork, observed: Mapping[Metric, Mapping[str, Decimal]],
                         now: datetime) -> list[Transition]:
    """Evaluate every rule (disabled ones resolve what they fired), store states and history, and queue one
    webhook per notification for the alert destinations, in the caller's transaction."""
    states = await uow.alerts.states()
    transitions: list[Transition] = []
    rules = {rule.id: rule for rule in await uow.alerts.rules(include_disabled=True)}
    for rule in rules.values():
        if not rule.enabled and not states.get(rule.id):
            continue
        result = evaluate(rule, observed.get(rule.metric, {}), states.get(rule.id, {}), now)
        await uow.alerts.replace_states(rule.id, result.states)
        transitions.extend(result.transitions)
    ids = await uow.alerts.add_events(transitions)
    for event_id, transition in zip(ids, transitions, strict=True):
        rule = rules[transition.rule_id]
        await enqueue_webhook(
            uow.session, m.webhooks, event_id=event_id,
            event_type=ALERT_FIRING if transition.kind.value == "firing" else ALERT_RESOLVED,
            subject=rule.id, audience=Audience(), occurred_at=now,
            data={"rule_id": rule.id, "rule": rule.name, "metric": rule.metric.value, "key": transition.key,
                  "value": str(transition.value) if transition.value is not None else None,
                  "comparator": rule.comparator.value, "threshold": str(rule.threshold),
                  "state": transition.kind.value})
    if transitions:
        log.info("alert transitions", extra={"count": len(transitions)})
    return transitions


async def add_destination(uow: OpsUnitOfWork, url: str, description: str | None, caller: Caller,
                          settings: OpsSettings, now: datetime) -> tuple[str, str]:
    """Register a webhook URL for alert notifications; returns (subscription id, signing secret shown once)."""
    errors = check_url(url.strip(), allow_http=settings.alert_webhook_allow_http)
    if description is not None and len(description) > 200:
        errors.append(FieldError(field="description", rule="max_length", message="At most 200 characters."))
    if errors:
        raise validation_problem(errors)
    subscription_id = f"whs_{uuid7().hex}"
    secret = new_secret()
    await uow.session.execute(insert(m.webhooks.subscription).values(
        id=subscription_id, organization_id=caller.organization_id, organization_kind="hub",
        organization_code=caller.organization_code, url=url.strip(), secret=secret,
        event_types=list(ALERT_EVENT_TYPES), description=description, active=True, created_at=now,
        disabled_at=None))
    await record_audit(uow.session, m.audit_event, action="alert_destination.created",
                       resource_type="webhook_subscription", resource_id=subscription_id, caller=caller,
                       occurred_at=now)
    return subscription_id, secret


async def remove_destination(uow: OpsUnitOfWork, subscription_id: str, caller: Caller, now: datetime) -> None:
    """Stop sending alerts to a destination (audited); raises a 404 Problem."""
    sub = m.webhooks.subscription
    result = await uow.session.execute(update(sub).where(sub.c.id == subscription_id, sub.c.active.is_(True))
                                       .values(active=False, disabled_at=now))
    if not getattr(result, "rowcount", 0):
        raise Problem(404, "alert-destination-not-found", "Alert destination not found")
    await record_audit(uow.session, m.audit_event, action="alert_destination.disabled",
                       resource_type="webhook_subscription", resource_id=subscription_id, caller=caller,
                       occurred_at=now)


async def destinations(uow: OpsUnitOfWork) -> list[Any]:
    """Active alert destinations with their delivery counts."""
    sub, d = m.webhooks.subscription, m.webhooks.delivery
    failed = (select(func.count()).select_from(d)
              .where(d.c.subscription_id == sub.c.id, d.c.status == "failed").scalar_subquery())
    delivered = (select(func.count()).select_from(d)
                 .where(d.c.subscription_id == sub.c.id, d.c.status == "delivered").scalar_subquery())
    rows = await uow.session.execute(
        select(sub.c.id, sub.c.url, sub.c.description, sub.c.created_at, failed.label("failed"),
               delivered.label("delivered"))
        .where(sub.c.active.is_(True)).order_by(sub.c.created_at))
    return list(rows.all())
