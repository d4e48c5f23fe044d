"""Benchmark of the SFTP gateway on real PostgreSQL and Kafka; prints one JSON object.

1. A 100,000-row Member Information File uploaded over SFTP (asyncssh client), timed until every row's
   member_information.received event is on Kafka (target: <= 10 s on 2 cores); rows/s and peak memory.
2. 20 concurrent SFTP uploads of 5 MB files, timed until all 20 are archived and file.received is on Kafka.

Needs CALHUB_TEST_DATABASE_URL (or CALHUB_DATABASE_URL) and CALHUB_TEST_KAFKA (`scripts/dev-services.sh env`).
Usage: python bench/gateway.py [--rows 100000] [--uploads 20] [--upload-mb 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services/sftp-gateway/tests"))

import sftp_gateway.service as gateway_service  # noqa: E402
from gateway_testing import HN_MIF_HEADER, hn_mif_row, running_gateway  # noqa: E402

from shared.bus.kafka import KafkaBus  # noqa: E402
from shared.testing.kafka import delete_topics  # noqa: E402

MIF_TOPIC = "sftp-gateway.member_information.v1"
FILE_TOPIC = "sftp-gateway.file.v1"


def _rss_mb() -> float:
    # ru_maxrss is the process's peak resident set in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _events_on(bus: KafkaBus, topic: str) -> int:
    return sum((await bus.end_offsets(topic)).values())


async def _wait_for_count(bus: KafkaBus, topic: str, target: int, limit_s: float = 300.0) -> None:
    deadline = time.perf_counter() + limit_s
    while await _events_on(bus, topic) < target:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{topic}: fewer than {target} events after {limit_s} s")
        await asyncio.sleep(0.05)


def _instrument(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Wall time spent per stage of the inbound path (parse = prepare, encode = row events, outbox = COPY)."""
    spent = {"parse_s": 0.0, "encode_s": 0.0, "outbox_write_s": 0.0, "rows_to_outbox_s": 0.0, "commit_s": 0.0}

    def timed_sync(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started
        return wrapper

    def timed_async(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started
        return wrapper

    monkeypatch.setattr(gateway_service, "prepare", timed_sync("parse_s", gateway_service.prepare))
    # Row events are encoded in a worker thread chunk by chunk while the outbox takes the chunks before them:
    # encode_s and outbox_write_s overlap; rows_to_outbox_s is the wall time of both together.
    monkeypatch.setattr(gateway_service, "encode_rows", timed_sync("encode_s", gateway_service.encode_rows))
    monkeypatch.setattr(gateway_service, "_write_row_events",
                        timed_async("rows_to_outbox_s", gateway_service._write_row_events))
    monkeypatch.setattr(gateway_service, "insert_outbox_rows",
                        timed_async("outbox_write_s", gateway_service.insert_outbox_rows))
    uow_type = gateway_service.SftpGatewayUnitOfWork
    monkeypatch.setattr(uow_type, "commit", timed_async("commit_s", uow_type.commit))
    return spent


async def run(rows: int, uploads: int, upload_mb: int) -> dict[str, object]:
    database = os.environ.get("CALHUB_TEST_DATABASE_URL") or os.environ.get("CALHUB_DATABASE_URL")
    kafka = os.environ.get("CALHUB_TEST_KAFKA")
    if not database or not kafka:
        raise SystemExit("set CALHUB_TEST_DATABASE_URL and CALHUB_TEST_KAFKA (scripts/dev-services.sh env)")
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    monkeypatch = pytest.MonkeyPatch()
    # Relay batches sized for file-sized bursts of events (the platform default is 500).
    monkeypatch.setenv("CALHUB_RELAY_BATCH_SIZE", "5000")
    bus = KafkaBus(kafka, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", client_id="gateway-bench",
                   linger_ms=20, max_batch_bytes=1024 * 1024)
    mif = (HN_MIF_HEADER + "\r\n" + "".join(hn_mif_row(i + 1, cin=f"{10000000 + i:08d}A") + "\r\n"
                                              for i in range(rows))).encode()
    result: dict[str, object] = {"benchmark": "sftp-gateway", "cores": os.cpu_count(),
                                 "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        async with running_gateway(tmp, monkeypatch, database_url=database, bus=bus,
                                   env={"SFTP_GATEWAY_MAX_CONCURRENT_INGESTS": "4"}) as gateway:
            await bus.ensure_topics([MIF_TOPIC, FILE_TOPIC])
            spent = _instrument(monkeypatch)
            publish = bus.publish
            spent["relay_publish_s"] = 0.0

            async def timed_publish(messages: Any) -> None:
                # The relay's share spent in the Kafka producer (the rest is outbox SELECT/DELETE and waiting).
                started = time.perf_counter()
                try:
                    await publish(messages)
                finally:
                    spent["relay_publish_s"] += time.perf_counter() - started

            monkeypatch.setattr(bus, "publish", timed_publish)
            before_rows = await _events_on(bus, MIF_TOPIC)
            rss_before = _rss_mb()
            started = time.perf_counter()
            async with gateway.session("healthnet") as sftp, sftp.open("/inbound/HN_ECM_MIF_202610.csv",
                                                                        "wb") as handle:
                await handle.write(mif)
            uploaded = time.perf_counter()
            await gateway.sftp.drain()
            processed = time.perf_counter()
            await _wait_for_count(bus, MIF_TOPIC, before_rows + rows)
            done = time.perf_counter()
            result["mif"] = {
                "rows": rows, "bytes": len(mif), "upload_s": round(uploaded - started, 3),
                "processed_s": round(processed - started, 3), "all_events_on_kafka_s": round(done - started, 3),
                "rows_per_s": round(rows / (done - started)), "target_s": 10.0,
                "within_target": (done - started) <= 10.0,
                "peak_rss_mb": round(_rss_mb(), 1), "rss_growth_mb": round(_rss_mb() - rss_before, 1),
                # Per stage (wall time; the stages may overlap): relay = processed until the last row on Kafka.
                "stages": {**{k: round(v, 3) for k, v in spent.items()},
                           "relay_s": round(done - processed, 3)},
                "load_average": [round(x, 2) for x in os.getloadavg()],
            }

            size = upload_mb * 1024 * 1024
            line = b"AUTH STATUS SYNTHETIC LINE 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"
            bodies = [(f"{i:04d}".encode() + line * (size // len(line) + 1))[:size] for i in range(uploads)]
            before_files = await _events_on(bus, FILE_TOPIC)

            async def one(i: int) -> None:
                async with asyncssh.connect("127.0.0.1", gateway.port, username="lacare",
                                            client_keys=[gateway.accounts["lacare"].key], known_hosts=None,
                                            agent_path=None) as conn, conn.start_sftp_client() as sftp:
                    async with sftp.open(f"/inbound/LAC_AUTH_STATUS_{i:04d}.txt", "wb") as handle:
                        await handle.write(bodies[i])

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(uploads)))
            uploaded = time.perf_counter()
            await gateway.sftp.drain()
            await _wait_for_count(bus, FILE_TOPIC, before_files + uploads)
            done = time.perf_counter()
            total_mb = uploads * size / 1024 / 1024
            result["concurrent_uploads"] = {
                "uploads": uploads, "file_mb": upload_mb, "upload_s": round(uploaded - started, 3),
                "all_received_on_kafka_s": round(done - started, 3),
                "upload_throughput_mb_s": round(total_mb / (uploaded - started), 1),
                "end_to_end_throughput_mb_s": round(total_mb / (done - started), 1),
                "peak_rss_mb": round(_rss_mb(), 1),
            }
    finally:
        monkeypatch.undo()
        await delete_topics(kafka, bus.topic_prefix)  # the gateway (and with it the bus) has stopped
    return result


def main() -> int:
    """Parse arguments, run, print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--upload-mb", type=int, default=5)
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    print(json.dumps(asyncio.run(run(args.rows, args.uploads, args.upload_mb))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
