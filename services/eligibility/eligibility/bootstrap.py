"""Composition root of the eligibility service: what the runtime needs to run it."""

from __future__ import annotations

from pathlib import Path

from eligibility.api import router
from eligibility.handlers import registry
from eligibility.models import Base, platform
from eligibility.repository import EligibilityUnitOfWork
from eligibility.settings import EligibilitySettings
from shared.runtime import ServiceDefinition

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def definition() -> ServiceDefinition:
    """The eligibility service as the runtime sees it."""
    return ServiceDefinition(
        name="eligibility",
        metadata=Base.metadata,
        tables=platform,
        handlers=registry,
        unit_of_work=EligibilityUnitOfWork,
        migrations=MIGRATIONS,
        routers=[router],
        settings=EligibilitySettings,
    )
