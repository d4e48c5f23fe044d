"""Composition root of the claims service: what the runtime needs to run it."""

from __future__ import annotations

from pathlib import Path

from claims.api import router
from claims.handlers import registry
from claims.models import Base, platform
from claims.repository import ClaimsUnitOfWork
from claims.settings import ClaimsSettings
from shared.runtime import ServiceDefinition

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def definition() -> ServiceDefinition:
    """The claims service as the runtime sees it."""
    return ServiceDefinition(
        name="claims",
        metadata=Base.metadata,
        tables=platform,
        handlers=registry,
        unit_of_work=ClaimsUnitOfWork,
        migrations=MIGRATIONS,
        routers=[router],
        settings=ClaimsSettings,
    )
