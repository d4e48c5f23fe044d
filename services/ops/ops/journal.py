"""The journal consumer: every calhub topic and its dead-letter twin, read as consumer group `ops` and written
to the journal (and the SLA projections) in one transaction per batch.

It is its own `Consumer`, not a handler registry: it must keep messages of types this build does not know and
messages that are not events at all (a poison message is exactly what ops needs to see).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from ops.domain.journal import journal_record
from ops.domain.projections import changes_for
from ops.repository import OpsUnitOfWork, StagedMessage
from ops.settings import OpsSettings
from shared.bus.base import DLQ_SUFFIX, RetryPolicy, Subscription
from shared.bus.message import IncomingMessage
from shared.contracts import EVENT_TYPES
from shared.runtime import Background, ServiceRuntime

log = logging.getLogger("calhub.ops.journal")

GROUP = "ops"


class JournalMetrics:
    """Entries journaled per topic; labels are logical topic names only."""

    _default: JournalMetrics | None = None

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.journaled = Counter("calhub_ops_journaled_total", "Messages written to the ops journal",
                                 ["topic"], registry=registry)
        self.duplicates = Counter("calhub_ops_journal_duplicates_total",
                                  "Redelivered messages the journal already held", ["topic"], registry=registry)

    @classmethod
    def default(cls) -> JournalMetrics:
        """The process-wide metrics, registered on first use."""
        if cls._default is None:
            cls._default = cls()
        return cls._default


def journal_topics() -> list[str]:
    """Every topic that carries a registered event, and each one's dead-letter topic."""
    topics = [topic.name for topic in EVENT_TYPES.topics()]
    return sorted(topics + [t + DLQ_SUFFIX for t in topics])


class JournalConsumer:
    """Writes consumed messages to the journal; idempotent by entry key, so redelivery is harmless."""

    def __init__(self, uow_factory: Callable[[], OpsUnitOfWork], *, clock: Callable[[], datetime] | None = None,
                 metrics: JournalMetrics | None = None) -> None:
        self.uow_factory = uow_factory
        self.clock = clock or (lambda: datetime.now(UTC))
        self.metrics = metrics or JournalMetrics.default()

    async def handle(self, message: IncomingMessage) -> None:
        """Journal one message."""
        await self.handle_batch([message])

    async def handle_batch(self, messages: Sequence[IncomingMessage]) -> None:
        """Journal a batch in one transaction; fold its authorization, claim and file events into the boards."""
        staged = [StagedMessage(journal_record(m.topic, m.partition, m.offset, m.value, m.headers),
                                m.key, m.value, m.headers) for m in messages]
        async with self.uow_factory() as uow:
            inserted = await uow.journal.append(staged, self.clock())
            changes = [change for record, _ in inserted if not record.is_dead_letter
                       for change in changes_for(record.event_type, record.occurred_at, record.data)]
            if changes:
                await uow.projections.apply(changes)
            await uow.commit()
        fresh = {record.entry_key for record, _ in inserted}
        for item in staged:
            counter = self.metrics.journaled if item.record.entry_key in fresh else self.metrics.duplicates
            counter.labels(item.record.topic).inc()


class JournalBackground(Background):
    """Subscribes the journal consumer when the service starts; keeps trying while the broker is away."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        settings = runtime.settings if isinstance(runtime.settings, OpsSettings) else OpsSettings()
        self.settings = settings
        self.subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self.consumer = JournalConsumer(runtime.uow)  # type: ignore[arg-type]

    async def start(self) -> None:
        """Subscribe now if the broker answers, else keep trying in the background."""
        if not self.settings.run_journal:
            return
        try:
            await self._subscribe()
        except Exception as exc:  # noqa: BLE001 - the broker is down: the service still starts
            log.warning("journal subscription failed; retrying", extra={"error_type": type(exc).__name__})
            self._task = asyncio.create_task(self._keep_trying(), name="ops-journal-subscribe")

    async def _subscribe(self) -> None:
        logical = [t.name for t in EVENT_TYPES.topics()]
        await self.runtime.bus.ensure_topics(logical)
        policy = RetryPolicy(max_attempts=self.settings.journal_max_attempts, max_backoff=30.0)
        self.subscription = await self.runtime.bus.subscribe(GROUP, journal_topics(), self.consumer, policy=policy)
        log.info("journal consuming", extra={"group": GROUP, "count": len(journal_topics())})

    async def _keep_trying(self) -> None:
        delay = 1.0
        while self.subscription is None:
            await asyncio.sleep(delay)
            try:
                await self._subscribe()
            except Exception as exc:  # noqa: BLE001 - keep trying until the broker is back
                delay = min(30.0, delay * 2)
                log.warning("journal subscription failed; retrying",
                            extra={"error_type": type(exc).__name__, "retry_in_s": delay})

    async def stop(self) -> None:
        """Leave the group."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self.subscription is not None:
            await self.subscription.stop()
            self.subscription = None

    async def ready(self) -> dict[str, Any]:
        """Ready once subscribed (or when the journal is switched off)."""
        if not self.settings.run_journal:
            return {"journal": "off"}
        if self.subscription is None:
            raise RuntimeError("journal not subscribed")
        return {"journal": "consuming"}
