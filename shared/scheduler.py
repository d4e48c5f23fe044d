"""Durable timers: rows in a service's `timer` table, scheduled in the caller's transaction and fired once.

Firing claims due rows, runs their handlers and marks them fired in one transaction, so a crash fires them
later and never twice; `FOR UPDATE SKIP LOCKED` (PostgreSQL) or BEGIN IMMEDIATE (SQLite) keeps two instances
off the same timer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from sqlalchemy import Select, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus.message import PermanentError
from shared.ids import uuid7
from shared.platform_tables import PlatformTables
from shared.polling import PollingLoop
from shared.uow import UnitOfWork

log = logging.getLogger("calhub.scheduler")

U = TypeVar("U", bound=UnitOfWork)
TimerHandler = Callable[["DueTimer", U], Awaitable[None]]
H = TypeVar("H", bound=Callable[..., Awaitable[None]])

UNKNOWN_KIND = "UnknownTimerKind: no handler is registered for this kind"


class TimerStatus(StrEnum):
    """Values of `timer.status`."""

    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Clock(Protocol):
    """Where the scheduler reads the time; tests pass a FixedClock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)


class FixedClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, at: datetime) -> None:
        self._now = as_utc(at)

    def now(self) -> datetime:
        """The time last set, timezone-aware UTC."""
        return self._now

    def set(self, at: datetime) -> None:
        """Jump to `at`; raises ValueError for a naive datetime."""
        self._now = as_utc(at)

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by `delta` and return the new time."""
        self._now += delta
        return self._now


def as_utc(value: datetime) -> datetime:
    """The same instant in UTC; raises ValueError for a naive datetime (its instant is unknown)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timer times must be timezone-aware")
    return value.astimezone(UTC)


def _from_db(value: datetime) -> datetime:
    # SQLite keeps no offset; everything this module writes is UTC, so a naive value read back is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class DueTimer:
    """A timer handed to its handler; `attempt` is 1 on the first try."""

    id: UUID
    kind: str
    subject: str
    due_at: datetime
    payload: dict[str, Any]
    attempt: int


class TimerHandlerRegistry(Generic[U]):
    """A service's timer handlers, one per kind."""

    def __init__(self) -> None:
        self._handlers: dict[str, TimerHandler[U]] = {}

    def handles(self, *kinds: str) -> Callable[[H], H]:
        """Decorator: run the function when a timer of one of these kinds is due; raises ValueError on a kind
        that already has a handler."""

        def bind(func: H) -> H:
            for kind in kinds:
                if kind in self._handlers:
                    raise ValueError(f"timer kind {kind!r} already has a handler")
                self._handlers[kind] = func
            return func

        return bind

    def handler_for(self, kind: str) -> TimerHandler[U] | None:
        """The handler of a kind, or None."""
        return self._handlers.get(kind)

    def kinds(self) -> list[str]:
        """Kinds with a handler, sorted."""
        return sorted(self._handlers)


async def schedule(session: AsyncSession, tables: PlatformTables, *, kind: str, subject: str,
                   due_at: datetime, payload: Mapping[str, Any], timer_id: UUID | None = None,
                   replace: bool = False) -> UUID:
    """Add a pending timer in the caller's transaction and return its id; `replace` first cancels the pending
    timers of the same kind and subject. Raises ValueError for a naive `due_at` or an empty kind or subject,
    IntegrityError if `timer_id` exists."""
    due = as_utc(due_at)
    if not kind or not subject:
        raise ValueError("a timer needs a kind and a subject")
    if replace:
        await cancel(session, tables, kind, subject)
    timer_id = timer_id or uuid7()
    await session.execute(insert(tables.timer).values(
        id=timer_id, kind=kind, subject=subject, due_at=due, payload=dict(payload),
        status=TimerStatus.PENDING.value, attempts=0, last_error=None, fired_at=None,
        created_at=datetime.now(UTC),
    ))
    return timer_id


async def cancel(session: AsyncSession, tables: PlatformTables, kind: str, subject: str) -> int:
    """Cancel the pending timers of a kind and subject in the caller's transaction; returns how many."""
    timer = tables.timer
    result = await session.execute(
        update(timer)
        .where(timer.c.kind == kind, timer.c.subject == subject, timer.c.status == TimerStatus.PENDING.value)
        .values(status=TimerStatus.CANCELLED.value)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# How long past its due time a pending timer may still be held. Holders share a timer and the scheduler skips
# it while any holds it, so a steady stream of overlapping holders could keep it from firing for as long as
# the stream lasts; past this, newcomers schedule their own timer and the held one fires once its last
# holder commits.
HOLD_OVERDUE_LIMIT = timedelta(seconds=30)


async def hold_pending(session: AsyncSession, tables: PlatformTables, kind: str, subject: str, *,
                       now: datetime) -> UUID | None:
    """Lock a pending timer of this kind and subject until the caller's transaction ends and return its id; None
    when there is none to count on (the caller schedules one).

    For timers that collect queued work (referral files, 270s of queued checks), the run must read the queue
    after the caller's rows commit. "Is one pending?" does not promise that: the scheduler may have claimed the
    timer and read the queue already, and the row reads pending until it commits. A held timer is skipped by
    the scheduler until the caller commits; one being fired is locked by the scheduler and skipped here, and
    so is one overdue by more than `HOLD_OVERDUE_LIMIT` at `now`.
    """
    timer = tables.timer
    query = (select(timer.c.id)
             .where(timer.c.kind == kind, timer.c.subject == subject, timer.c.status == TimerStatus.PENDING.value,
                    timer.c.due_at > as_utc(now) - HOLD_OVERDUE_LIMIT)
             .limit(1))
    if session.get_bind().dialect.name == "postgresql":
        # FOR SHARE: holders queuing work at the same moment share the one timer (an exclusive lock made each of
        # them skip it and schedule another: more, smaller referral files), while the scheduler's FOR UPDATE
        # still skips a held timer and a holder still skips one being fired. SQLite needs nothing: BEGIN
        # IMMEDIATE already keeps the scheduler out until the caller commits.
        query = query.with_for_update(read=True, skip_locked=True)
    found: UUID | None = await session.scalar(query)
    return found


async def retry_failed(session: AsyncSession, tables: PlatformTables, timer_id: UUID) -> bool:
    """Put a failed timer back to pending with a fresh attempt budget (ops, after a fix); False if not failed.
    """
    timer = tables.timer
    result = await session.execute(
        update(timer)
        .where(timer.c.id == timer_id, timer.c.status == TimerStatus.FAILED.value)
        .values(status=TimerStatus.PENDING.value, attempts=0)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def pending_due(session: AsyncSession, tables: PlatformTables, now: datetime) -> int:
    """How many pending timers are due at `now` (the scheduler's backlog)."""
    timer = tables.timer
    count = await session.scalar(
        select(func.count()).select_from(timer)
        .where(timer.c.status == TimerStatus.PENDING.value, timer.c.due_at <= as_utc(now))
    )
    return int(count or 0)


class SchedulerMetrics:
    """Timer counters and firing lag; the only label is the timer kind (never PHI)."""

    _default: SchedulerMetrics | None = None

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.fired = Counter("calhub_timers_fired_total", "Timers fired", ["kind"], registry=registry)
        self.attempts_failed = Counter("calhub_timer_attempts_failed_total", "Timer handler runs that raised",
                                       ["kind"], registry=registry)
        self.failed = Counter("calhub_timers_failed_total", "Timers given up on (status failed)", ["kind"],
                              registry=registry)
        self.lag = Histogram("calhub_timer_fire_lag_seconds", "Seconds from a timer's due time to its firing",
                             ["kind"], registry=registry,
                             buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600))

    @classmethod
    def default(cls) -> SchedulerMetrics:
        """The process-wide metrics, registered on first use."""
        if cls._default is None:
            cls._default = cls()
        return cls._default


class _HandlerFailed(Exception):
    """A handler raised; `position` is its timer's index in the batch."""

    def __init__(self, position: int, error: Exception) -> None:
        super().__init__(position)
        self.position = position
        self.error = error


def _error_name(error: BaseException) -> str:
    # The type only: exception messages may quote member data, and last_error and logs must carry no PHI.
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


class Scheduler(Generic[U]):
    """Fires a service's due timers, each exactly once, in the handler's own unit of work."""

    def __init__(self, uow_factory: Callable[[], U], registry: TimerHandlerRegistry[U], *,
                 batch_size: int = 500, poll_interval: float = 1.0, clock: Clock | None = None,
                 max_attempts: int = 5, max_backoff: float = 30.0,
                 metrics: SchedulerMetrics | None = None) -> None:
        if batch_size < 1 or max_attempts < 1:
            raise ValueError("batch_size and max_attempts must be at least 1")
        self.uow_factory = uow_factory
        self.registry = registry
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.clock: Clock = clock or SystemClock()
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.metrics = metrics or SchedulerMetrics.default()
        self._loop = PollingLoop(self._pass, name="timer-scheduler", interval=poll_interval,
                                 backoff_base=poll_interval, max_backoff=max_backoff)

    async def fire_due(self, now: datetime | None = None) -> int:
        """Fire every timer due at `now` (default: the clock), batch by batch; returns how many fired.

        A batch whose handler raises is rolled back and the failing timer retried alone; it gets no other try
        in this call and turns `failed` after `max_attempts` (at once on PermanentError). Database errors
        propagate.
        """
        at = as_utc(now) if now is not None else as_utc(self.clock.now())
        tried: set[UUID] = set()  # failed during this call: left for the next call
        fired = 0
        while True:
            claimed, count, clean = await self._fire_batch(at, tried)
            fired += count
            # Past a batch of failures, stop: the exclusion list stays a sane size and the next call goes on.
            if claimed == 0 or (clean and claimed < self.batch_size) or len(tried) >= self.batch_size:
                return fired

    async def pending_due(self, now: datetime | None = None) -> int:
        """How many pending timers are due at `now` (default: the clock)."""
        at = as_utc(now) if now is not None else self.clock.now()
        async with self.uow_factory() as uow:
            return await pending_due(uow.session, uow.tables, at)

    async def _fire_batch(self, at: datetime, tried: set[UUID], only: Sequence[UUID] | None = None,
                          ) -> tuple[int, int, bool]:
        """Claim and fire one batch; returns (claimed, fired, whether it went through without a failure)."""
        failure: Exception
        position: int | None
        async with self.uow_factory() as uow:
            timers = await self._claim(uow, at, exclude=tried, only=only)
            if not timers:
                return 0, 0, True
            try:
                return len(timers), await self._fire(uow, timers), True
            except _HandlerFailed as failed:
                failure, position = failed.error, failed.position
            except Exception as exc:  # failed at commit: which timer caused it is unknown
                failure, position = exc, None
        # The unit of work has rolled back and released its locks (and SQLite's write lock) by now.
        log.info("timer batch rolled back; isolating the failure",
                 extra={"batch_size": len(timers), "error_type": _error_name(failure)})
        if position is None:
            fired = 0
            for timer in timers:
                fired += await self._fire_alone(at, timer, tried)
            return len(timers), fired, False
        # The timers before the failing one ran fine: fire them again together, then the failing one alone.
        # Those after it are claimed by the next pass.
        fired = 0
        if position > 0:
            _, fired, _ = await self._fire_batch(at, tried, only=[t.id for t in timers[:position]])
        fired += await self._fire_alone(at, timers[position], tried)
        return len(timers), fired, False

    async def _fire_alone(self, at: datetime, timer: DueTimer, tried: set[UUID]) -> int:
        """Fire one timer in its own transaction; on failure record the attempt. Returns 1 if it fired."""
        async with self.uow_factory() as uow:
            timers = await self._claim(uow, at, exclude=(), only=[timer.id])
            if not timers:
                return 0  # fired, cancelled or being fired elsewhere since the batch rolled back
            try:
                return await self._fire(uow, timers)
            except _HandlerFailed as failed:
                failure: Exception = failed.error
            except Exception as exc:
                failure = exc
        tried.add(timer.id)
        await self._record_failure(timers[0], failure)
        return 0

    def _claim_statement(self, uow: U, at: datetime, *, exclude: Collection[UUID],
                         only: Sequence[UUID] | None) -> Select[Any]:
        timer = uow.tables.timer
        query = (select(timer.c.id, timer.c.kind, timer.c.subject, timer.c.due_at, timer.c.payload,
                        timer.c.attempts)
                 .where(timer.c.status == TimerStatus.PENDING.value, timer.c.due_at <= at,
                        # Kinds this build does not handle stay pending for an instance that does (a rolling
                        # deploy runs old and new builds side by side); `pending_unknown` reports them.
                        timer.c.kind.in_(self.registry.kinds())))
        if only is not None:
            query = query.where(timer.c.id.in_(only))
        if exclude:
            query = query.where(timer.c.id.not_in(exclude))
        # Equality on status, a range on due_at, ordered by due_at: an ordered scan of the (status, due_at)
        # index that stops after `limit` rows, however many fired rows the table holds.
        query = query.order_by(timer.c.due_at).limit(self.batch_size)
        if uow.session.get_bind().dialect.name == "postgresql":
            # Rows another instance is firing are skipped, not waited for; SQLite needs nothing here because
            # BEGIN IMMEDIATE already serializes writers.
            query = query.with_for_update(skip_locked=True)
        return query

    async def _claim(self, uow: U, at: datetime, *, exclude: Collection[UUID],
                     only: Sequence[UUID] | None) -> list[DueTimer]:
        rows = await uow.session.execute(self._claim_statement(uow, at, exclude=exclude, only=only))
        return [DueTimer(id=r.id, kind=r.kind, subject=r.subject, due_at=_from_db(r.due_at),
                         payload=r.payload, attempt=r.attempts + 1) for r in rows]

    async def _fire(self, uow: U, timers: list[DueTimer]) -> int:
        """Mark the claimed timers, run their handlers and commit; returns how many fired.

        Raises _HandlerFailed for a handler's exception, anything else from the commit.
        """
        timer = uow.tables.timer
        fired_at = as_utc(self.clock.now())
        runs = [(i, t, self.registry.handler_for(t.kind)) for i, t in enumerate(timers)]
        known = [t.id for _, t, handler in runs if handler is not None]
        unknown = [t for _, t, handler in runs if handler is None]
        # Marked before the handlers run, so a handler that replaces or cancels timers of its own kind and
        # subject (a monthly re-check scheduling the next one) leaves the timers being fired alone.
        if known:
            await uow.session.execute(
                update(timer).where(timer.c.id.in_(known))
                .values(status=TimerStatus.FIRED.value, fired_at=fired_at, attempts=timer.c.attempts + 1)
            )
        if unknown:
            await uow.session.execute(
                update(timer).where(timer.c.id.in_([t.id for t in unknown]))
                .values(status=TimerStatus.FAILED.value, attempts=timer.c.attempts + 1,
                        last_error=UNKNOWN_KIND)
            )
        for position, due, handler in runs:
            if handler is None:
                continue
            try:
                await handler(due, uow)
            except Exception as exc:
                raise _HandlerFailed(position, exc) from exc
        await uow.commit()
        for due in unknown:
            self.metrics.failed.labels(due.kind).inc()
            log.error("timer of unknown kind marked failed",
                      extra={"timer_id": str(due.id), "timer_kind": due.kind})
        for _, due, handler in runs:
            if handler is not None:
                self.metrics.fired.labels(due.kind).inc()
                self.metrics.lag.labels(due.kind).observe(max(0.0, (fired_at - due.due_at).total_seconds()))
        return len(known)

    async def _record_failure(self, due: DueTimer, failure: Exception) -> None:
        """Count a failed attempt in its own transaction; the timer turns failed when its budget is spent."""
        permanent = isinstance(failure, PermanentError)
        give_up = permanent or due.attempt >= self.max_attempts
        async with self.uow_factory() as uow:
            timer = uow.tables.timer
            # Counted in SQL rather than from `due.attempt`: another instance may have recorded one meanwhile.
            status = TimerStatus.FAILED.value if permanent else case(
                (timer.c.attempts + 1 >= self.max_attempts, TimerStatus.FAILED.value),
                else_=TimerStatus.PENDING.value,
            )
            await uow.session.execute(
                update(timer)
                .where(timer.c.id == due.id, timer.c.status == TimerStatus.PENDING.value)
                .values(attempts=timer.c.attempts + 1, last_error=_error_name(failure), status=status)
            )
            await uow.commit()
        self.metrics.attempts_failed.labels(due.kind).inc()
        if give_up:
            self.metrics.failed.labels(due.kind).inc()
        log.warning("timer handler failed", extra={"timer_id": str(due.id), "timer_kind": due.kind,
                                                   "attempt": due.attempt, "error_type": _error_name(failure),
                                                   "gave_up": give_up})

    def notify(self) -> None:
        """Wake the loop now (e.g. after scheduling a timer that is already due)."""
        self._loop.notify()

    async def _pass(self) -> bool:
        await self.fire_due()  # fires every due timer, batch by batch
        return False

    def start(self) -> None:
        """Fire due timers every `poll_interval` in a background task; back off while the database is down."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the background task; a batch in flight rolls back and fires later."""
        await self._loop.stop()
