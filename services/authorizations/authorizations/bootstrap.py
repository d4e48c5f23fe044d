"""Composition root of the authorizations service: what the runtime needs to run it."""

from __future__ import annotations

from pathlib import Path

from authorizations.api import router
from authorizations.handlers import registry
from authorizations.models import Base, platform
from authorizations.repository import AuthorizationsUnitOfWork
from authorizations.settings import AuthorizationsSettings
from shared.runtime import ServiceDefinition

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def definition() -> ServiceDefinition:
    """The authorizations service as the runtime sees it."""
    return ServiceDefinition(
        name="authorizations",
        metadata=Base.metadata,
        tables=platform,
        handlers=registry,
        unit_of_work=AuthorizationsUnitOfWork,
        migrations=MIGRATIONS,
        routers=[router],
        settings=AuthorizationsSettings,
    )
