"""The event bus: one interface, a Kafka and an in-process implementation, and the dispatcher."""

from shared.bus.base import Bus, BusUnavailable, Consumer, RetryPolicy, Subscription
from shared.bus.message import (
    IncomingMessage,
    MalformedEvent,
    OutgoingMessage,
    PermanentError,
    RetryableError,
    decode,
    encode,
)

__all__ = [
    "Bus",
    "BusUnavailable",
    "Consumer",
    "IncomingMessage",
    "MalformedEvent",
    "OutgoingMessage",
    "PermanentError",
    "RetryPolicy",
    "RetryableError",
    "Subscription",
    "decode",
    "encode",
]
