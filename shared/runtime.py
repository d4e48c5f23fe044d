"""Composition of one service at run time: database, outbox relay, consumers, scheduler, readiness.

A service describes itself with a `ServiceDefinition` (its schema, tables, handlers, unit of work, routes,
migrations); `ServiceRuntime` wires that description to a bus and a database when the app starts, never at
import. Embedded mode runs every service's runtime in one process on one in-process bus; distributed mode
runs one per process on Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.bus.base import Bus, BusUnavailable, RetryPolicy, Subscription
from shared.bus.dispatcher import Dispatcher
from shared.bus.registry import HandlerRegistry
from shared.contracts import EVENT_TYPES
from shared.db import create_engine, session_factory
from shared.migrations import current_revision, head_revision, upgrade_to_head
from shared.outbox import OutboxRelay
from shared.platform_tables import PlatformTables
from shared.settings import PlatformSettings, ServiceSettings
from shared.uow import UnitOfWork

log = logging.getLogger("calhub.runtime")

# Backoff between attempts to reach the broker after a start during an outage (seconds, doubling, capped).
BROKER_RETRY_FIRST = 1.0
BROKER_RETRY_MAX = 30.0


@dataclass
class ServiceDefinition:
    """What a service is: the pieces its composition root hands to the runtime."""

    name: str
    metadata: MetaData
    tables: PlatformTables
    handlers: HandlerRegistry[Any]
    unit_of_work: Callable[..., UnitOfWork]
    migrations: Path
    routers: Sequence[APIRouter] = ()
    settings: type[ServiceSettings] = ServiceSettings
    # Started after the database and bus: e.g. the scheduler, the SFTP server. Each gets the runtime.
    background: Sequence[Callable[[ServiceRuntime], Background]] = ()
    # Adapters handed to every unit of work (file store, clock, per-service configuration), built once per
    # runtime from the settings: `ports(runtime) -> {"files": FileStore(...), ...}`.
    ports: Callable[[ServiceRuntime], dict[str, Any]] | None = None

    @property
    def schema(self) -> str:
        assert self.metadata.schema is not None
        return self.metadata.schema

    @property
    def consumer_group(self) -> str:
        """Consumer group = service name (architecture rule)."""
        return self.name


class Background:
    """A long-running part of a service (scheduler, SFTP server) started and stopped with it."""

    async def start(self) -> None:
        """Start; must return promptly (run loops in tasks)."""

    async def stop(self) -> None:
        """Stop and release resources."""

    async def ready(self) -> dict[str, Any]:
        """Readiness details; raise to report not ready."""
        return {}


@dataclass
class ServiceRuntime:
    """One running service: its engine, sessions, relay and subscription."""

    definition: ServiceDefinition
    platform: PlatformSettings
    settings: ServiceSettings
    bus: Bus
    engine: AsyncEngine = field(init=False)
    sessions: async_sessionmaker[AsyncSession] = field(init=False)
    relay: OutboxRelay = field(init=False)
    subscription: Subscription | None = field(default=None, init=False)
    background: list[Background] = field(default_factory=list, init=False)
    state: dict[str, Any] = field(default_factory=dict, init=False)
    ports: dict[str, Any] = field(default_factory=dict, init=False)
    # Set while the service, started during a broker outage, keeps trying to create its topics and subscribe.
    joining_bus: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        url = self.platform.database_url_for(self.definition.name, self.settings.database_url)
        self.engine = create_engine(url, schema=self.definition.schema, physical_schema=self.physical_schema)
        self.sessions = session_factory(self.engine)
        self.relay = OutboxRelay(self.sessions, self.definition.tables, self.bus, service=self.definition.name,
                                 batch_size=self.platform.relay_batch_size)
        if self.definition.ports is not None:
            self.ports = self.definition.ports(self)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def physical_schema(self) -> str:
        """The schema the service's tables really live in (the model schema plus any configured suffix)."""
        return self.definition.schema + self.platform.schema_suffix

    def uow(self) -> UnitOfWork:
        """A new unit of work for this service; committing it wakes the relay."""
        return self.definition.unit_of_work(self.sessions, self.definition.tables, on_commit=self.relay.notify,
                                            ports=self.ports)

    async def migrate(self) -> None:
        """Bring the service's schema to the newest migration."""
        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade_to_head, self.definition.migrations, self.physical_schema)

    async def start(self, *, migrate: bool = True) -> None:
        """Migrate, then start the relay, consumers and background parts as the settings allow.

        If any step fails, what already started is stopped again before the error propagates.
        """
        try:
            await self._start(migrate=migrate)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, *, migrate: bool) -> None:
        if migrate:
            await self.migrate()
        try:
            await self._join_bus()
        except BusUnavailable as exc:
            # A restart during a broker outage must not keep the service down: its API serves and accepts work
            # into the outbox, readiness says it is waiting, and the relay and consumers catch up when the
            # broker answers.
            log.warning("broker unavailable at start; serving and retrying in the background",
                        extra={"service": self.name, "error_type": type(exc).__name__})
            self.joining_bus = asyncio.create_task(self._join_bus_when_up(), name=f"join-bus-{self.name}")
        if self.settings.run_relay:
            self.relay.start()
        for make in self.definition.background:
            part = make(self)
            await part.start()
            self.background.append(part)
        log.info("service started", extra={"service": self.name})

    async def _join_bus(self) -> None:
        """Create the topics the service reads and publishes, then subscribe its consumer group."""
        topics = self.definition.handlers.topics()
        # Create the topics this service publishes as well as those it reads, so the relay never waits on a
        # broker without auto-creation (production clusters usually disable it).
        owned = [t.name for t in EVENT_TYPES.topics() if t.service == self.definition.name]
        if topics or owned:
            await self.bus.ensure_topics(sorted(set(topics) | set(owned)))
        if self.settings.run_consumers and topics:
            dispatcher = Dispatcher(self.definition.consumer_group, self.definition.handlers, self.uow)
            policy = RetryPolicy(max_attempts=self.platform.consumer_max_attempts)
            self.subscription = await self.bus.subscribe(self.definition.consumer_group, topics, dispatcher,
                                                         policy=policy)

    async def _join_bus_when_up(self) -> None:
        delay = BROKER_RETRY_FIRST
        while True:
            await asyncio.sleep(delay)
            try:
                await self._join_bus()
            except BusUnavailable as exc:
                log.warning("broker still unavailable", extra={"service": self.name, "retry_in_seconds": delay,
                                                              "error_type": type(exc).__name__})
                delay = min(delay * 2, BROKER_RETRY_MAX)
                continue
            log.info("broker reached; consuming", extra={"service": self.name})
            return

    async def stop(self) -> None:
        """Stop consumers first (no new work), then background parts and the relay; close the engine.

        Every step runs even if an earlier one fails; the first failure is raised at the end.
        """
        joining, self.joining_bus = self.joining_bus, None
        if joining is not None:
            joining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await joining
        steps: list[Callable[[], Awaitable[None]]] = []
        if self.subscription is not None:
            steps.append(self.subscription.stop)
        steps += [part.stop for part in reversed(self.background)]
        steps += [self.relay.stop, self.engine.dispose]
        self.subscription = None
        self.background = []
        failures: list[BaseException] = []
        for step in steps:
            try:
                await step()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest; re-raised below
                log.warning("stop step failed", extra={"service": self.name, "error_type": type(exc).__name__})
                failures.append(exc)
        if failures:
            raise failures[0]

    async def readiness(self) -> dict[str, Any]:
        """Database reachable, schema at head, outbox backlog, background parts; raises nothing."""
        report: dict[str, Any] = {"service": self.name}
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                revision = await conn.run_sync(current_revision, self.physical_schema)
            if "schema_head" not in self.state:  # read the migration scripts once, not on every probe
                self.state["schema_head"] = head_revision(self.definition.migrations)
            head = self.state["schema_head"]
            report["database"] = "ok"
            report["schema_revision"] = revision
            report["schema_current"] = revision == head
            report["outbox_backlog"] = await self.relay.backlog()
        except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
            report["database"] = f"unavailable: {type(exc).__name__}"
            report["ready"] = False
            return report
        for part in self.background:
            try:
                report.update(await part.ready())
            except Exception as exc:  # noqa: BLE001
                report[type(part).__name__] = f"not ready: {type(exc).__name__}"
                report["ready"] = False
                return report
        consuming = self.subscription is not None and getattr(self.subscription, "healthy", True)
        if consuming:
            report["consumer"] = "running"
        elif self.joining_bus is not None and not self.joining_bus.done():
            report["consumer"] = "waiting for the broker"
        else:
            report["consumer"] = "stopped" if self.subscription is None else "crashed"
        report["ready"] = bool(report["schema_current"]) and (
            consuming or not self.definition.handlers.topics() or not self.settings.run_consumers
        )
        return report
