"""Choose the bus for a run mode: Kafka when distributed, in-process when embedded."""

from __future__ import annotations

from shared.bus.base import Bus
from shared.bus.inprocess import InProcessBus
from shared.settings import PlatformSettings


def create_bus(platform: PlatformSettings, *, client_id: str) -> Bus:
    """A bus for this process, configured from the platform settings (nothing connects until start)."""
    if platform.mode == "embedded":
        return InProcessBus(partitions=platform.kafka_partitions, batch_size=platform.consumer_batch_size)
    from shared.bus.kafka import KafkaBus

    return KafkaBus(
        bootstrap_servers=platform.kafka_bootstrap_servers,
        topic_prefix=platform.topic_prefix,
        client_id=client_id,
        partitions=platform.kafka_partitions,
        replication_factor=platform.kafka_replication_factor,
        batch_size=platform.consumer_batch_size,
    )
