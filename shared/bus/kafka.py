"""The Kafka bus: the `Bus` protocol on aiokafka, for distributed mode.

Publishing uses one idempotent producer (acks=all) per bus; every failure surfaces as BusUnavailable so the
outbox relay keeps its rows. Each subscription is one consumer-group member that hands each partition's
records to `deliver` (retries, backoff, dead letters) and commits that partition's offset only afterwards.
Logs carry topic, partition, offset, group and error type only: keys and values may hold PHI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError, TopicAlreadyExistsError

from shared.bus.base import DLQ_SUFFIX, BusUnavailable, Consumer, RetryPolicy, deliver
from shared.bus.message import IncomingMessage, OutgoingMessage

log = logging.getLogger("calhub.bus.kafka")

_PUBLISH_ERRORS = (KafkaError, OSError, TimeoutError)


class KafkaBus:
    """A Bus on Apache Kafka. Physical topic = `topic_prefix` + logical name, and likewise for consumer group
    ids; consumers see logical names.

    `partitions` and `replication_factor` apply to topics `ensure_topics` creates. Consumers: `batch_size`
    messages at most per `deliver` call (one dispatcher transaction), `fetch_max_records` per fetch,
    `partition_concurrency` partitions delivered at once per member. Producer: `linger_ms` and
    `max_batch_bytes` per partition batch; `request_timeout_ms` per request and `publish_timeout` seconds per
    publish() bound how long a dead broker can hold a caller. Nothing connects before first use.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "",
        client_id: str = "calhub",
        partitions: int = 6,
        replication_factor: int = 1,
        batch_size: int = 500,
        fetch_max_records: int = 3000,
        poll_timeout_ms: int = 200,
        linger_ms: int = 5,
        max_batch_bytes: int = 512 * 1024,
        request_timeout_ms: int = 5000,
        publish_timeout: float = 10.0,
        session_timeout_ms: int = 10000,
        heartbeat_interval_ms: int = 1000,
        max_poll_interval_ms: int = 300000,
        partition_concurrency: int = 6,
        stop_grace: float = 10.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self.client_id = client_id
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.batch_size = batch_size
        self.fetch_max_records = fetch_max_records
        self.poll_timeout_ms = poll_timeout_ms
        self.linger_ms = linger_ms
        self.max_batch_bytes = max_batch_bytes
        self.request_timeout_ms = request_timeout_ms
        self.publish_timeout = publish_timeout
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.max_poll_interval_ms = max_poll_interval_ms
        self.partition_concurrency = partition_concurrency
        self.stop_grace = stop_grace
        self._producer: Any = None
        self._producer_lock = asyncio.Lock()
        self._admin_client: Any = None
        self._subscriptions: set[KafkaSubscription] = set()

    # ------------------------------------------------------------------ names

    def physical(self, topic: str) -> str:
        """The broker's name for a logical topic."""
        return self.topic_prefix + topic

    def logical(self, topic: str) -> str:
        """The logical name of a broker topic (the prefix stripped)."""
        if self.topic_prefix and topic.startswith(self.topic_prefix):
            return topic[len(self.topic_prefix):]
        return topic

    def physical_group(self, group: str) -> str:
        """The consumer group id on the broker: prefixed like the topics, so deployments (or test sessions)
        sharing one cluster never join each other's groups and rebalance each other."""
        return self.topic_prefix + group

    def logical_group(self, group: str) -> str | None:
        """The service's group name for a broker group id, or None when it belongs to another deployment."""
        if self.topic_prefix and not group.startswith(self.topic_prefix):
            return None
        return group[len(self.topic_prefix):]

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Nothing to connect up front: the producer is built on first publish so a broker outage at boot
        delays events instead of failing the service."""

    async def stop(self) -> None:
        """Stop every subscription, then close the producer and the admin client."""
        for subscription in list(self._subscriptions):
            await subscription.stop()
        async with self._producer_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await _close_producer(producer)
        admin, self._admin_client = self._admin_client, None
        if admin is not None:
            await _close_quietly(admin.close())

    # --------------------------------------------------------------- publish

    async def _current_producer(self) -> Any:
        async with self._producer_lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=f"{self.client_id}-producer",
                    enable_idempotence=True,
                    acks="all",
                    request_timeout_ms=self.request_timeout_ms,
                    linger_ms=self.linger_ms,
                    max_batch_size=self.max_batch_bytes,
                    retry_backoff_ms=100,
                )
                try:
                    async with asyncio.timeout(self.publish_timeout):
                        await producer.start()
                except BaseException:
                    await _close_producer(producer)
                    raise
                self._producer = producer
            return self._producer

    async def _discard_producer(self, producer: Any) -> None:
        # An idempotent producer that failed may hold expired batches or a fenced producer id: start afresh.
        async with self._producer_lock:
            if self._producer is producer:
                self._producer = None
        if producer is not None:
            await _close_producer(producer)

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Publish in order and wait for every acknowledgment; raises BusUnavailable on any broker failure.

        Per-key order holds because a key maps to one partition and the idempotent producer keeps each
        partition's order, retries included.
        """
        if not messages:
            return
        producer: Any = None
        try:
            async with asyncio.timeout(self.publish_timeout):
                producer = await self._current_producer()
                acks = [
                    await producer.send(self.physical(m.topic), m.value, key=m.key, headers=list(m.headers))
                    for m in messages
                ]
                # asyncio.wait never cancels the acks it waits on, so a timeout cannot corrupt the producer.
                await asyncio.wait(acks)
            for ack in acks:
                if ack.cancelled():  # the producer was closed under us (another publish discarded it)
                    raise KafkaError("delivery cancelled")
                ack.result()
        except _PUBLISH_ERRORS as exc:
            log.warning("kafka publish failed",
                        extra={"topics": sorted({m.topic for m in messages}), "count": len(messages),
                               "error_type": type(exc).__name__})
            await self._discard_producer(producer)
            raise BusUnavailable(f"kafka publish failed: {type(exc).__name__}") from exc

    async def _dead_letter(self, message: OutgoingMessage) -> None:
        await self.publish([message])

    # ------------------------------------------------------------- subscribe

    async def subscribe(
        self, group: str, topics: Sequence[str], consumer: Consumer, *, policy: RetryPolicy | None = None
    ) -> KafkaSubscription:
        """Join `group` for `topics` (logical names) and start handing batches to `consumer`.

        Raises BusUnavailable when the broker cannot be reached.
        """
        subscription = KafkaSubscription(self, group, list(topics), consumer, policy or RetryPolicy())
        await subscription.start()
        self._subscriptions.add(subscription)
        return subscription

    def _consumer(self, group: str | None) -> Any:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-consumer",
            group_id=self.physical_group(group) if group is not None else None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            max_poll_interval_ms=self.max_poll_interval_ms,
            max_poll_records=self.fetch_max_records,
        )

    def _incoming(self, record: Any) -> IncomingMessage:
        return IncomingMessage(
            topic=self.logical(record.topic),
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value if record.value is not None else b"",
            headers=tuple((name, bytes(value)) for name, value in (record.headers or ())),
        )

    # ----------------------------------------------------------------- admin

    async def _admin(self) -> Any:
        if self._admin_client is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers,
                                        client_id=f"{self.client_id}-admin",
                                        request_timeout_ms=self.request_timeout_ms)
            try:
                await admin.start()
            except BaseException:
                await _close_quietly(admin.close())
                raise
            self._admin_client = admin
        return self._admin_client

    async def ensure_topics(self, topics: Sequence[str], *, wait_seconds: float = 30.0) -> None:
        """Create the topics and their dead-letter twins if missing, and wait until their partitions are
        known to the broker; raises BusUnavailable."""
        names = sorted({self.physical(t) for t in topics} | {self.physical(t + DLQ_SUFFIX) for t in topics})
        if not names:
            return
        try:
            async with asyncio.timeout(wait_seconds):
                admin = await self._admin()
                response = await admin.create_topics(
                    [NewTopic(name, self.partitions, self.replication_factor) for name in names])
                for entry in response.topic_errors:
                    name, code = entry[0], entry[1]
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise BusUnavailable(f"creating topic {name} failed with Kafka error code {code}")
                while True:
                    described = await admin.describe_topics(names)
                    ready = {d["topic"] for d in described if d["error_code"] == 0 and d["partitions"]
                             and all(p["error_code"] == 0 and p["leader"] >= 0 for p in d["partitions"])}
                    if ready >= set(names):
                        return
                    await asyncio.sleep(0.1)
        except _PUBLISH_ERRORS as exc:
            await self._reset_admin()
            raise BusUnavailable(f"ensure_topics failed: {type(exc).__name__}") from exc

    async def _reset_admin(self) -> None:
        admin, self._admin_client = self._admin_client, None
        if admin is not None:
            await _close_quietly(admin.close())

    async def _partitions(self, topic: str) -> list[int]:
        admin = await self._admin()
        described = await admin.describe_topics([self.physical(topic)])
        for entry in described:
            if entry["error_code"] == 0:
                return sorted(p["partition"] for p in entry["partitions"])
        return []

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """Next offset per partition of a topic (empty if the topic does not exist); raises BusUnavailable."""
        try:
            partitions = await self._partitions(topic)
            if not partitions:
                return {}
            reader = self._consumer(None)
            await reader.start()
            try:
                tps = [TopicPartition(self.physical(topic), p) for p in partitions]
                ends = await reader.end_offsets(tps)
                return {tp.partition: int(offset) for tp, offset in ends.items()}
            finally:
                await _close_quietly(reader.stop())
        except _PUBLISH_ERRORS as exc:
            await self._reset_admin()
            raise BusUnavailable(f"end_offsets failed: {type(exc).__name__}") from exc

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        """Committed offset per partition for a group (0 where nothing is committed); raises BusUnavailable."""
        try:
            partitions = await self._partitions(topic)
            if not partitions:
                return {}
            admin = await self._admin()
            tps = [TopicPartition(self.physical(topic), p) for p in partitions]
            offsets = await admin.list_consumer_group_offsets(self.physical_group(group), partitions=tps)
            result = {p: 0 for p in partitions}
            for tp, meta in offsets.items():
                if tp.topic == self.physical(topic) and meta.offset >= 0:
                    result[tp.partition] = int(meta.offset)
            return result
        except _PUBLISH_ERRORS as exc:
            await self._reset_admin()
            raise BusUnavailable(f"committed failed: {type(exc).__name__}") from exc

    async def read(self, topic: str, timeout: float = 10.0) -> list[IncomingMessage]:  # noqa: ASYNC109 - ops API
        """Every message currently in a topic, partition by partition (dead-letter listings, tests).

        Raises BusUnavailable if the broker fails or the end is not reached within `timeout` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                partitions = await self._partitions(topic)
                if not partitions:
                    return []
                reader = self._consumer(None)
                await reader.start()
                try:
                    tps = [TopicPartition(self.physical(topic), p) for p in partitions]
                    reader.assign(tps)
                    ends = await reader.end_offsets(tps)
                    await reader.seek_to_beginning(*tps)
                    found: list[IncomingMessage] = []
                    pending = {tp for tp in tps if ends[tp] > 0}
                    while pending:
                        for tp in list(pending):
                            if await reader.position(tp) >= ends[tp]:
                                pending.discard(tp)
                        if not pending:
                            break
                        batches = await reader.getmany(*pending, timeout_ms=200)
                        for tp, records in batches.items():
                            found.extend(self._incoming(r) for r in records if r.offset < ends[tp])
                    return sorted(found, key=lambda m: (m.partition, m.offset))
                finally:
                    await _close_quietly(reader.stop())
        except _PUBLISH_ERRORS as exc:
            await self._reset_admin()
            raise BusUnavailable(f"read failed: {type(exc).__name__}") from exc


class KafkaSubscription:
    """One consumer-group member: fetch, deliver each partition's records, commit after delivery.

    Each fetched partition gets a worker that delivers its records in order; partitions do not wait for one
    another (up to the bus's `partition_concurrency` at once), so handler transactions for different keys
    overlap their database round trips.
    """

    def __init__(self, bus: KafkaBus, group: str, topics: list[str], consumer: Consumer,
                 policy: RetryPolicy) -> None:
        self.bus = bus
        self.group = group
        self.topics = topics
        self.consumer = consumer
        self.policy = policy
        self._generation = 0  # bumped by every rebalance: records fetched before it are stale
        self._busy = 0  # chunks being delivered or committed right now
        self._idle = asyncio.Event()
        self._idle.set()
        self._slots = asyncio.Semaphore(max(1, bus.partition_concurrency))
        self._stopping = False
        self._kafka: Any = None
        self._task: asyncio.Task[None] | None = None
        self.crashed: BaseException | None = None

    @property
    def assignment(self) -> list[tuple[str, int]]:
        """(logical topic, partition) pairs this member holds now, sorted."""
        if self._kafka is None or self.done:
            return []
        return sorted((self.bus.logical(tp.topic), tp.partition) for tp in self._kafka.assignment())

    @property
    def done(self) -> bool:
        """True once the member stopped (asked to, or crashed)."""
        return self._task is not None and self._task.done()

    @property
    def healthy(self) -> bool:
        """False once the consumer loop has ended (readiness reports it)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Connect and join the group; raises BusUnavailable."""
        kafka = self.bus._consumer(self.group)
        try:
            async with asyncio.timeout(self.bus.publish_timeout):
                await kafka.start()
        except _PUBLISH_ERRORS as exc:
            await _close_quietly(kafka.stop())
            raise BusUnavailable(f"kafka consumer could not start: {type(exc).__name__}") from exc
        kafka.subscribe(topics=[self.bus.physical(t) for t in self.topics], listener=_Rebalance(self))
        self._kafka = kafka
        self._task = asyncio.create_task(self._run(), name=f"kafka-consumer-{self.group}")

    async def stop(self) -> None:
        """Finish the batches in flight (up to the bus's stop_grace seconds), leave the group, close."""
        self._stopping = True
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait([task], timeout=self.bus.stop_grace)
            if not done:
                task.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):  # stopping; errors were logged
                await task
        self.bus._subscriptions.discard(self)

    async def _run(self) -> None:
        try:
            await self._consume()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # A crash (real or simulated) kills this member without committing the batch in flight: the
            # partitions go to the other members, which re-read from the last commit; their inbox dedups.
            cause = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) and exc.exceptions else exc
            self.crashed = cause
            log.error("kafka consumer crashed; leaving the group",
                      extra={"group": self.group, "error_type": type(cause).__name__})
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        finally:
            await _close_quietly(self._kafka.stop(), seconds=10.0)

    async def _consume(self) -> None:
        """Fetch for the partitions no worker is busy with, and start one worker per fetched partition.

        A partition never has two workers, so its records are delivered in order; partitions do not wait
        for each other. A crash in any worker ends the loop (the others are cancelled in `finally`).
        """
        kafka = self._kafka
        workers: dict[Any, tuple[asyncio.Task[int | None], list[Any]]] = {}
        fetch: asyncio.Task[dict[Any, list[Any]]] | None = None
        fetch_generation = self._generation
        failures = 0
        try:
            while not self._stopping:
                if fetch is None:
                    assigned = kafka.assignment()
                    idle = [tp for tp in assigned if tp not in workers]
                    if idle or not assigned:
                        # While workers are busy, poll briefly: a partition whose worker finishes is only
                        # fetched again by the next getmany.
                        wait_ms = min(self.bus.poll_timeout_ms, 20) if workers else self.bus.poll_timeout_ms
                        fetch_generation = self._generation
                        fetch = asyncio.create_task(kafka.getmany(
                            *idle, timeout_ms=wait_ms, max_records=self.bus.fetch_max_records))
                pending = {task for task, _ in workers.values()} | ({fetch} if fetch is not None else set())
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for tp, (task, records) in list(workers.items()):
                    if task.done():
                        del workers[tp]
                        undelivered = task.result()  # a crash propagates from here
                        if undelivered is not None:
                            self._rewind([(tp, records[undelivered:])])
                if fetch is not None and fetch.done():
                    done, fetch = fetch, None
                    try:
                        fetched = done.result()
                    except IllegalStateError:
                        continue  # asked for a partition a rebalance just took away
                    except KafkaError as exc:
                        failures += 1
                        log.warning("kafka fetch failed; retrying",
                                    extra={"group": self.group, "error_type": type(exc).__name__})
                        await asyncio.sleep(min(5.0, 0.2 * 2 ** min(failures, 5)))
                        continue
                    failures = 0
                    for tp, records in fetched.items():
                        if tp in workers:  # cannot happen (only idle partitions are fetched); fetch again later
                            self._rewind([(tp, records)])
                            continue
                        worker = asyncio.create_task(self._deliver_partition(tp, records, fetch_generation))
                        workers[tp] = (worker, records)
            # Stopping: the workers end at their next chunk boundary; what they did not deliver stays uncommitted.
            for tp, (task, records) in workers.items():
                undelivered = await task
                if undelivered is not None:
                    self._rewind([(tp, records[undelivered:])])
            workers.clear()
        finally:
            leftovers: list[asyncio.Task[Any]] = [task for task, _ in workers.values()]
            if fetch is not None:
                leftovers.append(fetch)
            for leftover in leftovers:
                leftover.cancel()
            await asyncio.gather(*leftovers, return_exceptions=True)  # cancelled, or already reported

    async def _deliver_partition(self, tp: Any, records: list[Any], generation: int) -> int | None:
        """Deliver and commit one partition's records in chunks of the bus's batch_size.

        Returns the index of the first record not delivered when the fetch went stale (a rebalance since it
        was made), the partition is no longer ours, or the member is stopping; otherwise None.
        """
        size = self.bus.batch_size
        async with self._slots:
            for start in range(0, len(records), size):
                if self._stopping or generation != self._generation or tp not in self._kafka.assignment():
                    return start
                chunk = records[start:start + size]
                self._busy += 1
                self._idle.clear()
                try:
                    if not await self._deliver_chunk(tp, chunk):
                        return None
                finally:
                    self._busy -= 1
                    if self._busy == 0:
                        self._idle.set()
        return None

    async def _deliver_chunk(self, tp: Any, chunk: list[Any]) -> bool:
        """Deliver, then commit the offset after the chunk; False if delivery failed and the chunk was
        rewound to be fetched again."""
        messages = [self.bus._incoming(r) for r in chunk]
        try:
            await deliver(messages, self.consumer, group=self.group, policy=self.policy,
                          dead_letter=self.bus._dead_letter)
        except Exception as exc:  # noqa: BLE001 - e.g. the dead-letter topic unreachable
            log.warning("delivery failed; will re-read the batch",
                        extra={"group": self.group, "topic": messages[0].topic, "partition": tp.partition,
                               "offset": chunk[0].offset, "error_type": type(exc).__name__})
            self._rewind([(tp, chunk)])
            await asyncio.sleep(1.0)
            return False
        await self._commit(tp, chunk[-1].offset + 1)
        return True

    def _rewind(self, undelivered: list[tuple[Any, list[Any]]]) -> None:
        # getmany() already moved the position past every record it returned. Records not delivered must be
        # fetched again, or a later commit on the partition would skip them. A partition no longer ours is
        # re-read by its new owner from the last commit, so only partitions still assigned are rewound.
        assigned = self._kafka.assignment()
        for tp, records in undelivered:
            if records and tp in assigned:
                self._kafka.seek(tp, records[0].offset)

    async def _commit(self, tp: Any, offset: int) -> None:
        try:
            await self._kafka.commit({tp: offset})
        except (CommitFailedError, IllegalStateError) as exc:
            # The partition moved to another member; it re-reads from the last commit and its inbox dedups.
            log.info("offset commit refused after a rebalance",
                     extra={"group": self.group, "topic": self.bus.logical(tp.topic), "partition": tp.partition,
                            "offset": offset, "error_type": type(exc).__name__})
            self._generation += 1
        except KafkaError as exc:
            log.warning("offset commit failed; a later commit covers it",
                        extra={"group": self.group, "topic": self.bus.logical(tp.topic),
                               "partition": tp.partition, "offset": offset, "error_type": type(exc).__name__})


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Lets the batches in flight finish and commit before partitions are given away."""

    def __init__(self, subscription: KafkaSubscription) -> None:
        self.subscription = subscription

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # No new chunk starts from a fetch made before this point; wait for those already running to commit.
        self.subscription._generation += 1
        await self.subscription._idle.wait()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.subscription._generation += 1
        log.info("partitions assigned",
                 extra={"group": self.subscription.group,
                        "partitions": sorted(f"{self.subscription.bus.logical(tp.topic)}/{tp.partition}"
                                             for tp in assigned)})


async def _close_producer(producer: Any) -> None:
    if not await _close_quietly(producer.stop(), seconds=3.0):
        # stop() waits for pending batches; with the broker gone, drop the connections instead.
        await _close_quietly(producer.client.close(), seconds=3.0)


async def _close_quietly(closing: Any, *, seconds: float = 5.0) -> bool:
    """Await a close coroutine, bounded; True if it finished cleanly."""
    # asyncio.timeout rather than wait_for, which on 3.11 can swallow a cancellation.
    try:
        async with asyncio.timeout(seconds):
            await closing
        return True
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - closing a broken client; nothing left to do
        log.debug("close failed", extra={"error_type": type(exc).__name__})
        return False
