"""What ops reads from outside its database: consumer groups and offsets from the bus, readiness of services.

Both buses answer `end_offsets(topic)` and `committed(group, topic)` (the in-process bus synchronously, Kafka
asynchronously). Which groups exist is configured, or discovered: from the in-process bus's groups, or from
Kafka's consumer groups that committed offsets on topics under this deployment's prefix. Health is read from the
runtimes in embedded mode and by polling `/ready` of each configured service URL in distributed mode; a service
that does not answer is reported as such, never as an error of the console.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from shared.bus.base import Bus
from shared.bus.inprocess import InProcessBus
from shared.runtime import ServiceRuntime
from shared.scheduler import pending_due

log = logging.getLogger("calhub.ops.topology")


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@dataclass(frozen=True)
class Offsets:
    """End and committed offsets of one group on one topic, per partition."""

    group: str
    topic: str
    end: dict[int, int]
    committed: dict[int, int]


@dataclass
class BusSample:
    """Offsets of every known group and topic, and topics that could not be read."""

    offsets: list[Offsets] = field(default_factory=list)
    dead_letter_depth: dict[str, int] = field(default_factory=dict)  # DLQ topic → messages in it (broker view)
    errors: list[str] = field(default_factory=list)


async def consumer_groups(bus: Bus, configured: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Group → logical topics it reads: the configured map, else what the bus knows."""
    if configured:
        return {group: sorted(topics) for group, topics in configured.items()}
    if isinstance(bus, InProcessBus):
        return _inprocess_groups(bus)
    bootstrap = getattr(bus, "bootstrap_servers", None)
    if bootstrap:
        return await _kafka_groups(bus, bootstrap)
    return {}


def _inprocess_groups(bus: InProcessBus) -> dict[str, list[str]]:
    return bus.groups()


async def _kafka_groups(bus: Any, bootstrap: str) -> dict[str, list[str]]:
    from aiokafka.admin import AIOKafkaAdminClient

    prefix: str = getattr(bus, "topic_prefix", "")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="calhub-ops-lag", request_timeout_ms=5000)
    await admin.start()
    try:
        listed = await admin.list_consumer_groups()
        groups: dict[str, set[str]] = {}
        for entry in listed:
            group = bus.logical_group(entry[0])
            if group is None:  # another deployment's group on a shared cluster
                continue
            offsets = await admin.list_consumer_group_offsets(entry[0])
            topics = {bus.logical(tp.topic) for tp in offsets if tp.topic.startswith(prefix)}
            if topics:
                groups[group] = topics
        return {name: sorted(topics) for name, topics in sorted(groups.items())}
    finally:
        await admin.close()


async def sample_bus(bus: Bus, groups: Mapping[str, Sequence[str]], dead_letter_topics: Sequence[str]) -> BusSample:
    """Read end and committed offsets for every group and topic; a topic that fails is listed in `errors`."""
    sample = BusSample()
    ends: dict[str, dict[int, int]] = {}

    async def end_of(topic: str) -> dict[int, int]:
        if topic not in ends:
            ends[topic] = dict(await _resolve(bus.end_offsets(topic)))  # type: ignore[attr-defined]
        return ends[topic]

    for group, topics in groups.items():
        for topic in topics:
            try:
                end = await end_of(topic)
                committed = dict(await _resolve(bus.committed(group, topic)))  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - one unreadable topic must not hide the others
                sample.errors.append(f"{group}/{topic}: {type(exc).__name__}")
                continue
            sample.offsets.append(Offsets(group, topic, end, committed))
    for topic in dead_letter_topics:
        try:
            sample.dead_letter_depth[topic] = sum((await end_of(topic)).values())
        except Exception as exc:  # noqa: BLE001
            sample.errors.append(f"{topic}: {type(exc).__name__}")
    return sample


@dataclass(frozen=True)
class ServiceHealth:
    """Readiness of one service as ops sees it."""

    service: str
    ready: bool
    detail: dict[str, Any]
    outbox_backlog: int | None = None
    scheduler_backlog: int | None = None
    error: str | None = None


async def _runtime_health(runtime: ServiceRuntime, now: datetime) -> ServiceHealth:
    report = await runtime.readiness()
    backlog: int | None = None
    try:
        async with runtime.uow() as uow:
            backlog = await pending_due(uow.session, uow.tables, now)
    except Exception as exc:  # noqa: BLE001 - the database is down: readiness already says so
        log.info("scheduler backlog unavailable", extra={"service": runtime.name, "error_type": type(exc).__name__})
    outbox = report.get("outbox_backlog")
    return ServiceHealth(runtime.name, bool(report.get("ready")), report,
                         outbox_backlog=outbox if isinstance(outbox, int) else None, scheduler_backlog=backlog)


async def _poll(client: httpx.AsyncClient, name: str, base_url: str) -> list[ServiceHealth]:
    try:
        response = await client.get(base_url.rstrip("/") + "/ready")
        body = response.json()
    except Exception as exc:  # noqa: BLE001 - unreachable or not JSON: reported, not raised
        return [ServiceHealth(name, False, {}, error=type(exc).__name__)]
    reports = body.get("services") if isinstance(body, dict) else None
    if not isinstance(reports, list) or not reports:
        return [ServiceHealth(name, response.status_code == 200, {}, error=f"http_{response.status_code}")]
    found = []
    for report in reports:
        if not isinstance(report, dict):
            continue
        outbox = report.get("outbox_backlog")
        found.append(ServiceHealth(str(report.get("service") or name), bool(report.get("ready")), report,
                                   outbox_backlog=outbox if isinstance(outbox, int) else None))
    return found


async def service_health(runtimes: Mapping[str, ServiceRuntime], urls: Mapping[str, str], now: datetime, *,
                         poll_seconds: float = 2.0, client: httpx.AsyncClient | None = None) -> list[ServiceHealth]:
    """Readiness of every service: the runtimes of this process, then each configured URL not among them."""
    results = list(await asyncio.gather(*(_runtime_health(r, now) for r in runtimes.values())))
    remote = {name: url for name, url in urls.items() if name not in runtimes}
    if remote:
        owned = client is None
        http = client or httpx.AsyncClient(timeout=poll_seconds, follow_redirects=False)
        try:
            polled = await asyncio.gather(*(_poll(http, name, url) for name, url in sorted(remote.items())))
        finally:
            if owned:
                await http.aclose()
        for reports in polled:
            results.extend(reports)
    return sorted(results, key=lambda h: h.service)
