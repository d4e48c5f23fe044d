"""Composition root of the referrals service: what the runtime needs to run it."""

from __future__ import annotations

from pathlib import Path

from referrals.api import router
from referrals.handlers import registry
from referrals.models import Base, platform
from referrals.repository import ReferralsUnitOfWork
from referrals.settings import ReferralsSettings
from shared.runtime import ServiceDefinition

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def definition() -> ServiceDefinition:
    """The referrals service as the runtime sees it."""
    return ServiceDefinition(
        name="referrals",
        metadata=Base.metadata,
        tables=platform,
        handlers=registry,
        unit_of_work=ReferralsUnitOfWork,
        migrations=MIGRATIONS,
        routers=[router],
        settings=ReferralsSettings,
    )
