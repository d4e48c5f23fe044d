"""The monitor: every alert interval, sample lag and health, compute the boards, evaluate alert rules, refresh the
Prometheus gauges. And the retention purge, a durable timer.

The monitor is a periodic loop rather than a durable timer: a missed round is harmless (the next one sees the
same conditions), while reading the broker and polling services inside a timer's transaction would hold a
database transaction (on SQLite, the write lock) across network calls. With several ops replicas a lease makes
exactly one of them evaluate, so alerts are never sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ops.domain.alerts import Transition, observe
from ops.domain.boards import Boards
from ops.domain.lag import ConsumerPosition, advance
from ops.journal import journal_topics
from ops.metrics import Snapshot, collector
from ops.repository import OpsUnitOfWork
from ops.service import compute_boards, evaluate_rules
from ops.settings import OpsSettings
from ops.topology import BusSample, ServiceHealth, consumer_groups, sample_bus, service_health
from shared.bus.base import DLQ_SUFFIX
from shared.db import read_one_snapshot
from shared.outbox import acquire_lease, instance_id
from shared.runtime import Background, ServiceRuntime
from shared.scheduler import DueTimer, Scheduler, TimerHandlerRegistry, schedule
from shared.webhooks import wake_deliverer

log = logging.getLogger("calhub.ops.monitor")

PURGE = "ops.journal_purge"
PURGE_SUBJECT = "journal"
LEASE = "ops-monitor"


def settings_of(runtime: ServiceRuntime) -> OpsSettings:
    """The runtime's settings as OpsSettings."""
    return runtime.settings if isinstance(runtime.settings, OpsSettings) else OpsSettings()


def peers_of(runtime: ServiceRuntime) -> dict[str, ServiceRuntime]:
    """The runtimes of this process (every service in embedded mode; ops alone in distributed mode).

    The console router's lifespan records the app's runtimes in `runtime.state["peers"]` (see console.py).
    """
    peers = runtime.state.get("peers")
    return dict(peers) if isinstance(peers, dict) and peers else {runtime.name: runtime}


@dataclass
class LagRow:
    """Lag of one group on one topic, for the API and the console."""

    group: str
    topic: str
    lag: int
    committed: int
    end: int
    stalled: bool
    last_progress_at: datetime


@dataclass
class CycleReport:
    """What one monitor round saw and did."""

    at: datetime
    lag: list[LagRow] = field(default_factory=list)
    health: list[ServiceHealth] = field(default_factory=list)
    boards: Boards | None = None
    transitions: list[Transition] = field(default_factory=list)
    bus_errors: list[str] = field(default_factory=list)
    dead_letter_topic_depth: dict[str, int] = field(default_factory=dict)


class OpsMonitor:
    """Samples the bus and the services and evaluates alert rules; one round per `run_once`."""

    def __init__(self, runtime: ServiceRuntime, *, clock: Callable[[], datetime] | None = None) -> None:
        self.runtime = runtime
        self.settings = settings_of(runtime)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.holder = instance_id()
        self.last: CycleReport | None = None

    def _uow(self) -> OpsUnitOfWork:
        uow = self.runtime.uow()
        assert isinstance(uow, OpsUnitOfWork)
        return uow

    async def sample(self) -> BusSample:
        """Offsets of every consumer group (configured or discovered) and the depth of every DLQ topic."""
        groups = await consumer_groups(self.runtime.bus, self.settings.consumer_groups)
        dlq = [t for t in journal_topics() if t.endswith(DLQ_SUFFIX)]
        return await sample_bus(self.runtime.bus, groups, dlq)

    async def lag(self, sample: BusSample | None = None, now: datetime | None = None) -> list[LagRow]:
        """Lag per group and topic now, with stalls judged from the stored positions (nothing is written)."""
        now = now or self.clock()
        sample = sample or await self.sample()
        async with self._uow() as uow:
            known = await uow.alerts.positions()
        return [self._row(advance(known.get((o.group, o.topic)), o.group, o.topic, o.end, o.committed, now), now)
                for o in sample.offsets]

    def _row(self, position: ConsumerPosition, now: datetime) -> LagRow:
        stall = timedelta(minutes=self.settings.stall_after_minutes)
        return LagRow(position.group, position.topic, position.lag, position.committed_total, position.end_total,
                      position.stalled(now, stall), position.last_progress_at)

    async def health(self, now: datetime | None = None) -> list[ServiceHealth]:
        """Readiness of every service (runtimes of this process, then configured URLs)."""
        return await service_health(peers_of(self.runtime), self.settings.service_urls, now or self.clock(),
                                    poll_seconds=self.settings.health_timeout_seconds)

    async def run_once(self) -> CycleReport:
        """One round: sample, store positions, compute boards, evaluate rules, queue alert webhooks, refresh gauges.
        """
        now = self.clock()
        report = CycleReport(at=now)
        sample = await self.sample()
        report.bus_errors = sample.errors
        report.dead_letter_topic_depth = sample.dead_letter_depth
        report.health = await self.health(now)
        backlogs = {h.service: h.outbox_backlog for h in report.health if h.outbox_backlog is not None}
        stall = timedelta(minutes=self.settings.stall_after_minutes)
        # The boards are four queries: read them as of one moment, as GET /boards does, in a transaction of
        # their own. The round's writes (positions, alert states) stay at READ COMMITTED: at REPEATABLE READ an
        # update racing another writer (a rule edited meanwhile) would fail to serialize.
        async with self._uow() as snapshot:
            await read_one_snapshot(snapshot.session)
            boards = await compute_boards(snapshot, self.settings, now)
        async with self._uow() as uow:
            known = await uow.alerts.positions()
            positions = [advance(known.get((o.group, o.topic)), o.group, o.topic, o.end, o.committed, now)
                         for o in sample.offsets]
            await uow.alerts.save_positions(positions, known.keys())
            pending = await uow.dead_letters.pending_counts()
            observed = observe(boards, positions, backlogs, pending, now, stall)
            report.transitions = await evaluate_rules(uow, observed, now)
            firing = len(await uow.alerts.firing())
            await uow.commit()
        if report.transitions:
            wake_deliverer(self.runtime)
        report.boards = boards
        report.lag = [self._row(p, now) for p in positions]
        self.last = report
        collector().snapshot = Snapshot(
            lag={(p.group, p.topic): p.lag for p in positions},
            stalled={(p.group, p.topic): p.stalled(now, stall) for p in positions},
            dead_letters_pending={(g, t): n for g, t, n in pending},
            dead_letter_topic_depth=dict(sample.dead_letter_depth),
            outbox_backlog=dict(backlogs),
            scheduler_backlog={h.service: h.scheduler_backlog for h in report.health
                               if h.scheduler_backlog is not None},
            service_ready={h.service: h.ready for h in report.health},
            decisions_overdue={k: len(v.overdue) for k, v in boards.decisions.items()},
            decisions_due_soon={k: len(v.due_soon) for k, v in boards.decisions.items()},
            authorizations_expiring={k: len(v) for k, v in boards.expiring.items()},
            claims_outstanding_over_30={k: v.outstanding_over_30 for k, v in boards.claims.items()},
            alerts_firing=firing,
        )
        return report

    async def holds_lease(self) -> bool:
        """True if this instance may evaluate this round (one evaluator across replicas)."""
        ttl = timedelta(seconds=self.settings.alert_interval_seconds * 3)
        async with self.runtime.sessions() as session:
            return await acquire_lease(session, self.runtime.definition.tables, LEASE, self.holder, ttl)


class MonitorBackground(Background):
    """Runs the monitor every alert interval while the service runs."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.monitor = OpsMonitor(runtime)
        runtime.state["monitor"] = self.monitor
        collector()  # the gauges exist on /metrics from the start, empty until the first round
        self.interval = self.monitor.settings.alert_interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the loop (first round shortly after start, once the journal is subscribed)."""
        self._task = asyncio.create_task(self._run(), name="ops-monitor")

    async def _run(self) -> None:
        await asyncio.sleep(min(5.0, self.interval))
        failures = 0
        while True:
            try:
                if await self.monitor.holds_lease():
                    await self.monitor.run_once()
                failures = 0
                delay: float = self.interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failed round is retried; alerts keep their state
                failures += 1
                delay = min(float(self.interval), 2.0 * 2 ** min(failures, 5))
                log.warning("monitor round failed", extra={"error_type": type(exc).__name__, "retry_in_s": delay})
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def ready(self) -> dict[str, Any]:
        """When the last round ran."""
        last = self.monitor.last
        return {"monitor_last_round": last.at.isoformat() if last else None}


timers: TimerHandlerRegistry[OpsUnitOfWork] = TimerHandlerRegistry()


@timers.handles(PURGE)
async def purge_journal(timer: DueTimer, uow: OpsUnitOfWork) -> None:
    """Delete one chunk of journal entries past retention; continue at once if the chunk was full, else arm the
    next purge one interval later."""
    settings: OpsSettings = uow.ports["settings"]
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=settings.journal_retention_days)
    deleted = await uow.journal.purge(cutoff, settings.purge_chunk)
    again = now if deleted >= settings.purge_chunk else now + timedelta(minutes=settings.purge_interval_minutes)
    await schedule(uow.session, uow.tables, kind=PURGE, subject=PURGE_SUBJECT, due_at=again,
                   payload={"retention_days": settings.journal_retention_days})
    if deleted:
        log.info("journal purged", extra={"count": deleted})


class TimerBackground(Background):
    """The service's durable scheduler (retention purge), with the first purge armed at start."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.scheduler: Scheduler[OpsUnitOfWork] = Scheduler(runtime.uow, timers)  # type: ignore[arg-type]

    async def start(self) -> None:
        """Arm the purge if no purge is pending, then start firing."""
        async with self.runtime.uow() as uow:
            timer = uow.tables.timer
            from sqlalchemy import func, select

            pending = await uow.session.scalar(select(func.count()).select_from(timer).where(
                timer.c.kind == PURGE, timer.c.status == "pending"))
            if not pending:
                await schedule(uow.session, uow.tables, kind=PURGE, subject=PURGE_SUBJECT,
                               due_at=datetime.now(UTC) + timedelta(minutes=1), payload={})
                await uow.commit()
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop firing."""
        await self.scheduler.stop()

    async def ready(self) -> dict[str, Any]:
        """The number of timers due and not fired."""
        return {"timers_due": await self.scheduler.pending_due()}
