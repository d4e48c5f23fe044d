"""Base of every published event payload, topic naming and the registry of event types."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class Topic:
    """One stream per aggregate, owned by one service: `<service>.<aggregate>.v<major>`."""

    service: str
    aggregate: str
    major: int = 1

    @property
    def name(self) -> str:
        return f"{self.service}.{self.aggregate}.v{self.major}"

    @property
    def dead_letters(self) -> str:
        return f"{self.name}.dlq"


class EventData(BaseModel):
    """A published payload. Consumers ignore unknown fields so producers can add fields within a major."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    topic: ClassVar[Topic]
    schema_version: ClassVar[int] = 1


E = TypeVar("E", bound=type[EventData])


class UnknownEventType(LookupError):
    """No contract is registered for an event type name."""


class EventTypeRegistry:
    """Maps event type names to their payload models."""

    def __init__(self) -> None:
        self._types: dict[str, type[EventData]] = {}

    def register(self, event_type: str, topic: Topic, schema_version: int = 1) -> Callable[[E], E]:
        """Class decorator: bind a payload model to its type name and topic; duplicates raise ValueError."""

        def bind(model: E) -> E:
            if event_type in self._types:
                raise ValueError(f"event type {event_type!r} is registered twice")
            aggregate = event_type.split(".", 1)[0]
            if aggregate != topic.aggregate:
                raise ValueError(f"event type {event_type!r} does not belong on topic {topic.name!r}")
            model.event_type = event_type
            model.topic = topic
            model.schema_version = schema_version
            self._types[event_type] = model
            return model

        return bind

    def get(self, event_type: str) -> type[EventData]:
        """The payload model for a type name; raises UnknownEventType."""
        try:
            return self._types[event_type]
        except KeyError:
            raise UnknownEventType(event_type) from None

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._types

    def __iter__(self) -> Iterator[type[EventData]]:
        return iter(self._types.values())

    def topics(self) -> list[Topic]:
        """Every topic that carries a registered event, sorted by name."""
        return sorted({model.topic for model in self._types.values()}, key=lambda t: t.name)


EVENT_TYPES = EventTypeRegistry()
event = EVENT_TYPES.register
