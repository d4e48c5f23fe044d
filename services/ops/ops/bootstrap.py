"""Composition root of the ops service: what the runtime needs to run it."""

from __future__ import annotations

from pathlib import Path

from ops.api import router
from ops.handlers import registry
from ops.models import Base, platform
from ops.repository import OpsUnitOfWork
from ops.settings import OpsSettings
from shared.runtime import ServiceDefinition

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def definition() -> ServiceDefinition:
    """The ops service as the runtime sees it."""
    return ServiceDefinition(
        name="ops",
        metadata=Base.metadata,
        tables=platform,
        handlers=registry,
        unit_of_work=OpsUnitOfWork,
        migrations=MIGRATIONS,
        routers=[router],
        settings=OpsSettings,
    )
