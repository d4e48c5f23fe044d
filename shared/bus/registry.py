"""A service's handler registry: which function handles which event type."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from shared.contracts.base import EventData
from shared.envelope import Envelope
from shared.uow import UnitOfWork

U = TypeVar("U", bound=UnitOfWork)
Handler = Callable[[Envelope[Any], U], Awaitable[None]]
H = TypeVar("H", bound=Callable[..., Awaitable[None]])


class HandlerRegistry(Generic[U]):
    """Collects a service's event handlers; the dispatcher asks it what to run for an event."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler[U]]] = defaultdict(list)
        self._models: dict[str, type[EventData]] = {}

    def handles(self, *event_models: type[EventData]) -> Callable[[H], H]:
        """Decorator: run the function for each of these event types."""

        def bind(func: H) -> H:
            for model in event_models:
                self._handlers[model.event_type].append(func)
                self._models[model.event_type] = model
            return func

        return bind

    def handlers_for(self, event_type: str) -> list[Handler[U]]:
        """Handlers for an event type, in registration order (empty if none)."""
        return self._handlers.get(event_type, [])

    def topics(self) -> list[str]:
        """Logical topics this registry needs to consume, sorted."""
        return sorted({model.topic.name for model in self._models.values()})

    def event_types(self) -> list[str]:
        """Event types this registry handles, sorted."""
        return sorted(self._models)
