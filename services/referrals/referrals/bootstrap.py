"""Composition root of the referrals service: what the runtime needs to run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from referrals.api import router
from referrals.fhir_api import router as fhir_router
from referrals.handlers import registry
from referrals.models import Base, platform, webhooks
from referrals.repository import ReferralsUnitOfWork
from referrals.service import WEBHOOK_EVENT_TYPES
from referrals.settings import ReferralsSettings
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.scheduler import SystemClock
from shared.webhooks import WebhookPolicy, wake_deliverer, webhook_background, webhook_router

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def webhook_policy(runtime: ServiceRuntime) -> WebhookPolicy:
    """The delivery policy from the service's settings."""
    settings = runtime.settings
    assert isinstance(settings, ReferralsSettings)
    return settings.webhook_policy()


def ports(runtime: ServiceRuntime) -> dict[str, Any]:
    """Adapters every unit of work gets: the clock, and a hook that wakes the webhook deliverer on commit."""
    return {"clock": SystemClock(), "after_commit": lambda: wake_deliverer(runtime)}


def definition() -> ServiceDefinition:
    """The referrals service as the runtime sees it."""
    return ServiceDefinition(
        name="referrals",
        metadata=Base.metadata,
        tables=platform,
        handlers=registry,
        unit_of_work=ReferralsUnitOfWork,
        migrations=MIGRATIONS,
        routers=[router, fhir_router, webhook_router(service="referrals", tables=webhooks,
                                                     event_types=WEBHOOK_EVENT_TYPES, policy_of=webhook_policy)],
        settings=ReferralsSettings,
        background=[webhook_background(webhooks, webhook_policy)],
        ports=ports,
    )
