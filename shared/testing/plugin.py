"""Pytest plugin: real-infrastructure fixtures (PostgreSQL, Kafka) and throwaway service databases.

Integration tests read CALHUB_TEST_DATABASE_URL and CALHUB_TEST_KAFKA (printed by
`scripts/dev-services.sh env`). Without them they are skipped on a laptop, but fail under CI=true so that a
CI run can never pass by skipping the real-infrastructure tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.testing.database import ServiceDatabase, service_database, sqlite_url


def _required_env(name: str) -> str:
    value = os.environ.get(name)
    if value:
        return value
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not set; CI must run integration tests on real infrastructure")
    pytest.skip(f"{name} not set (run scripts/dev-services.sh up and eval its env)")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the real PostgreSQL test database."""
    return _required_env("CALHUB_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of the real Kafka test broker."""
    return _required_env("CALHUB_TEST_KAFKA")


@pytest.fixture
async def kafka_topic_prefix(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A unique topic prefix for one test; every topic under it is deleted after the test (and its bus)."""
    from shared.testing.kafka import delete_topics  # aiokafka only for the tests that use Kafka

    prefix = f"t{uuid.uuid4().hex[:12]}."
    yield prefix
    await delete_topics(kafka_bootstrap, prefix)


@pytest.fixture
async def pg_service_db(postgres_url: str) -> AsyncIterator[ServiceDatabase]:
    """A fresh PostgreSQL schema with the platform tables, dropped after the test."""
    async with service_database(postgres_url) as db:
        yield db


@pytest.fixture
async def sqlite_service_db(tmp_path: Path) -> AsyncIterator[ServiceDatabase]:
    """A fresh SQLite database with the platform tables."""
    async with service_database(sqlite_url(tmp_path)) as db:
        yield db
