"""Fixtures of the end-to-end tests: one distributed CalHub (six `calhub serve` processes on the real PostgreSQL and
Kafka) per test session, with this session's organizations, keys, SFTP accounts and synthetic members."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import SERVICES, Accountant, Cluster, Members, Tenants, create_tenants  # noqa: E402

from shared.testing.kafka import delete_topics  # noqa: E402


def _required(name: str) -> str:
    value = os.environ.get(name)
    if value:
        return value
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not set; CI must run the end-to-end tests on real infrastructure")
    pytest.skip(f"{name} not set (run scripts/dev-services.sh up and eval its env)")


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Every service in its own process, isolated by schema suffix and topic prefix; torn down at the end.

    The session's folder (service logs, profiles, stored files) is outside pytest's rotating temporary folders
    and is kept when a test failed (its path is printed) or CALHUB_E2E_KEEP is set; schemas and topics are
    dropped unless CALHUB_E2E_KEEP is set.
    """
    database_url = _required("CALHUB_TEST_DATABASE_URL")
    kafka = _required("CALHUB_TEST_KAFKA")
    root = Path(tempfile.mkdtemp(prefix="calhub-e2e-"))
    running = Cluster(root, database_url=database_url, kafka=kafka)
    running.tenants = asyncio.run(create_tenants(database_url, running.token))
    running.write_configuration(running.tenants)
    try:
        for name in SERVICES:
            running.start(name, wait=False)
        for name in SERVICES:
            running.wait_ready(name, timeout=180)
        yield running
    finally:
        running.shutdown()
        keep = bool(os.environ.get("CALHUB_E2E_KEEP"))
        if not keep:
            # First: it only logs if the broker is down (a failed outage test), so the schemas still go.
            asyncio.run(delete_topics(kafka, running.topic_prefix))
            asyncio.run(running.drop_schemas())
        if keep or request.session.testsfailed:
            sys.stderr.write(f"\ncalhub e2e: service logs kept in {root / 'logs'}\n")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def live(cluster: Cluster) -> Cluster:
    """The cluster with every first instance up (restarts whatever an earlier test left down)."""
    cluster.ensure_running()
    return cluster


@pytest.fixture(scope="session")
def tenants(cluster: Cluster) -> Tenants:
    assert cluster.tenants is not None
    return cluster.tenants


@pytest.fixture(scope="session")
def members(cluster: Cluster) -> Members:
    """Synthetic members of this session (remembered for the PHI log scan)."""
    return Members(cluster.token)


@pytest.fixture
def accountant(live: Cluster, tenants: Tenants) -> Accountant:
    return Accountant(live, tenants)
