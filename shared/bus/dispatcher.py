"""The dispatcher: per message (or batch), one unit of work that records the inbox and runs the handlers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Generic

from shared.bus.message import HEADER_EVENT_TYPE, IncomingMessage, decode
from shared.bus.registry import HandlerRegistry, U
from shared.contracts.base import EVENT_TYPES, EventTypeRegistry, UnknownEventType
from shared.envelope import Envelope
from shared.inbox import handled_among, record_handled
from shared.telemetry import BusMetrics, consumer_span

log = logging.getLogger("calhub.bus.dispatcher")


class Dispatcher(Generic[U]):
    """Feeds consumed messages to a service's handlers, exactly once per consumer group.

    Unknown event types are skipped and counted (a newer producer may publish types this build does not know);
    malformed events raise MalformedEvent, which the delivery policy dead-letters without retrying.
    """

    def __init__(self, group: str, registry: HandlerRegistry[U], uow_factory: Callable[[], U], *,
                 event_types: EventTypeRegistry = EVENT_TYPES, metrics: BusMetrics | None = None) -> None:
        self.group = group
        self.registry = registry
        self.uow_factory = uow_factory
        self.event_types = event_types
        self.metrics = metrics or BusMetrics.default()

    def _decode(self, message: IncomingMessage) -> Envelope[Any] | None:
        declared = message.header(HEADER_EVENT_TYPE)
        if declared is not None and declared in self.event_types and not self.registry.handlers_for(declared):
            return None  # a type this group does not handle: not validated, never dead-lettered here
        try:
            return decode(message, self.event_types)
        except UnknownEventType as exc:
            self.metrics.unknown_event(self.group, message.topic)
            log.info("skipping unknown event type",
                     extra={"group": self.group, "topic": message.topic, "event_type": str(exc)})
            return None

    async def handle(self, message: IncomingMessage) -> None:
        """Handle one message in its own transaction."""
        await self.handle_batch([message])

    async def handle_batch(self, messages: Sequence[IncomingMessage]) -> None:
        """Handle messages in one transaction; any failure rolls back the whole batch."""
        envelopes = [e for e in (self._decode(m) for m in messages) if e is not None]
        wanted = [e for e in envelopes if self.registry.handlers_for(e.type)]
        if not wanted:
            return
        async with self.uow_factory() as uow:
            seen = await handled_among(uow.session, uow.tables, self.group, {e.id for e in wanted})
            handled: list[tuple[Any, str]] = []
            for envelope in wanted:
                if envelope.id in seen:
                    self.metrics.duplicate(self.group, envelope.type)
                    continue
                seen.add(envelope.id)
                with consumer_span(envelope, self.group):
                    for handler in self.registry.handlers_for(envelope.type):
                        await handler(envelope, uow)
                handled.append((envelope.id, envelope.type))
            await record_handled(uow.session, uow.tables, self.group, handled)
            await uow.commit()
        for _event_id, event_type in handled:
            self.metrics.handled(self.group, event_type)
