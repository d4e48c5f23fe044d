"""The bus interface both implementations honour, and the delivery policy they share.

Semantics (the contract tests hold both buses to them): topics are partitioned logs keyed by subject;
a key always lands on the same partition, so per-key order holds; consumers in one group split the partitions;
delivery is at-least-once: an offset is committed only after the consumer's handler returned; a message that
keeps failing goes to `<topic>.dlq` with the error in its headers after bounded retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.bus.message import HandlerError, Headers, IncomingMessage, OutgoingMessage, PermanentError

log = logging.getLogger("calhub.bus")

HEADER_DLQ_ERROR_TYPE = "calhub-dlq-error-type"
HEADER_DLQ_ERROR = "calhub-dlq-error"
HEADER_DLQ_ATTEMPTS = "calhub-dlq-attempts"
HEADER_DLQ_GROUP = "calhub-dlq-group"
HEADER_DLQ_TOPIC = "calhub-dlq-original-topic"
HEADER_DLQ_PARTITION = "calhub-dlq-original-partition"
HEADER_DLQ_OFFSET = "calhub-dlq-original-offset"
DLQ_SUFFIX = ".dlq"


class BusUnavailable(Exception):
    """The broker could not take the messages; nothing may be assumed published."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff before a message is dead-lettered."""

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 10.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after the given failed attempt (1-based)."""
        return float(min(self.max_backoff, self.initial_backoff * (2 ** (attempt - 1))))


class Consumer(Protocol):
    """What a subscription feeds. `handle_batch` may process many messages in one transaction."""

    async def handle(self, message: IncomingMessage) -> None: ...

    async def handle_batch(self, messages: Sequence[IncomingMessage]) -> None: ...


class Subscription(Protocol):
    async def stop(self) -> None: ...


class Bus(Protocol):
    """Publish and subscribe; both the Kafka and the in-process bus implement it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish in order; returns when every message is durably accepted; raises BusUnavailable."""
        ...

    async def subscribe(
        self, group: str, topics: Sequence[str], consumer: Consumer, *, policy: RetryPolicy | None = None
    ) -> Subscription:
        """Start consuming `topics` (logical names) as a member of `group`."""
        ...

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create the topics and their dead-letter topics if missing."""
        ...


DeadLetter = Callable[[OutgoingMessage], Awaitable[None]]


def describe_error(error: BaseException) -> str:
    """What a dead letter may say about its error: our own errors' messages (written PHI-free on purpose),
    otherwise only the type — a library's message can quote input values (a name, a CIN)."""
    if isinstance(error, HandlerError):
        return str(error)[:4000]
    return type(error).__name__


def is_transient(error: BaseException) -> bool:
    """Infrastructure trouble (database or broker unreachable, pool exhausted, lock timeout) that says nothing
    about the message itself: retried without spending the message's attempts, so an outage never sends healthy
    messages to dead letters or lets later events of a key overtake earlier ones."""
    from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(error, OperationalError | InterfaceError | DisconnectionError | PoolTimeout | BusUnavailable
                  | ConnectionError | TimeoutError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OSError)


def dead_letter_message(
    message: IncomingMessage, group: str, error: BaseException, attempts: int
) -> OutgoingMessage:
    """The dead-letter copy of a message: same key and value, the error and origin in headers."""
    original_topic = message.header(HEADER_DLQ_TOPIC) or message.topic
    kept: Headers = tuple(h for h in message.headers if not h[0].startswith("calhub-dlq-"))
    headers: Headers = kept + (
        (HEADER_DLQ_ERROR_TYPE, type(error).__name__.encode()),
        (HEADER_DLQ_ERROR, describe_error(error).encode()),
        (HEADER_DLQ_ATTEMPTS, str(attempts).encode()),
        (HEADER_DLQ_GROUP, group.encode()),
        (HEADER_DLQ_TOPIC, original_topic.encode()),
        (HEADER_DLQ_PARTITION, str(message.partition).encode()),
        (HEADER_DLQ_OFFSET, str(message.offset).encode()),
    )
    return OutgoingMessage(
        topic=original_topic + DLQ_SUFFIX, key=message.key, value=message.value, headers=headers
    )


async def deliver(
    messages: Sequence[IncomingMessage],
    consumer: Consumer,
    *,
    group: str,
    policy: RetryPolicy,
    dead_letter: DeadLetter,
) -> None:
    """Hand a batch (all from one partition, in order) to the consumer under the retry/dead-letter policy.

    The batch is tried once as a whole; if it fails, each message is retried on its own so one poison
    message cannot hold back or take down its neighbours. Returns when every message is either handled
    or dead-lettered, so the caller may commit the offsets.
    """
    if not messages:
        return
    if len(messages) > 1:
        try:
            await consumer.handle_batch(messages)
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - fall back to one by one; the error is reported there
            log.debug("batch of %d failed, handling one by one", len(messages))
    for message in messages:
        await _deliver_one(message, consumer, group=group, policy=policy, dead_letter=dead_letter)


async def _deliver_one(
    message: IncomingMessage, consumer: Consumer, *, group: str, policy: RetryPolicy, dead_letter: DeadLetter
) -> None:
    attempt = 0
    outage = 0
    while True:
        attempt += 1
        try:
            await consumer.handle(message)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is either retried or dead-lettered
            if is_transient(exc):
                # Hold the partition (and its order) until the infrastructure is back; ops sees the lag grow.
                attempt -= 1
                outage += 1
                log.warning("infrastructure unavailable, holding the message",
                            extra={"topic": message.topic, "offset": message.offset, "group": group,
                                   "error_type": type(exc).__name__, "retry_count": outage})
                await asyncio.sleep(policy.backoff(min(outage, 16)))
                continue
            permanent = isinstance(exc, PermanentError)
            if permanent or attempt >= policy.max_attempts:
                log.warning(
                    "dead-lettering message",
                    extra={
                        "topic": message.topic,
                        "partition": message.partition,
                        "offset": message.offset,
                        "group": group,
                        "error_type": type(exc).__name__,
                        "attempts": attempt,
                    },
                )
                await dead_letter(dead_letter_message(message, group, exc, attempt))
                return
            log.info(
                "handler failed, retrying",
                extra={"topic": message.topic, "offset": message.offset, "attempt": attempt,
                       "error_type": type(exc).__name__},
            )
            await asyncio.sleep(policy.backoff(attempt))
