"""Throwaway Kafka topics of tests and benchmarks: delete every topic under a run's unique prefix afterwards."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

log = logging.getLogger("calhub.testing.kafka")

# What an unreachable or failing broker raises; anything else is a bug in the caller or here and propagates.
_BROKER_ERRORS = (KafkaError, OSError, TimeoutError)


async def delete_topics(bootstrap: str, prefix: str, *, timeout_ms: int = 10_000) -> None:
    """Delete every topic whose name starts with `prefix`, best effort: broker errors are logged, not raised.

    Raises ValueError for an empty prefix (it would match every topic on the broker).
    """
    if not prefix:
        raise ValueError("refusing to delete topics under an empty prefix (that is every topic on the broker)")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="calhub-test-cleanup",
                                request_timeout_ms=timeout_ms)
    try:
        await admin.start()
        names = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if not names:
            return
        response = await admin.delete_topics(names, timeout_ms=timeout_ms)
        # Per-topic failures come back as error codes, not exceptions; "unknown topic" means already gone.
        failed = {name: code for name, code, *_ in response.topic_error_codes
                  if code not in (0, UnknownTopicOrPartitionError.errno)}
        if failed:
            log.warning("could not delete %d of %d topics under %r: %s", len(failed), len(names), prefix, failed)
    except _BROKER_ERRORS as exc:
        # A cleanup failure must not fail the test or benchmark that already ran, but leaked topics are
        # what killed the dev broker, so say so.
        log.warning("could not delete topics under %r (%s: %s); they are left on %s", prefix,
                    type(exc).__name__, exc, bootstrap)
    finally:
        try:
            await admin.close()
        except _BROKER_ERRORS as exc:
            log.warning("closing the Kafka admin client failed (%s)", type(exc).__name__)
