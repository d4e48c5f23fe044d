"""Composition root of the authorizations service: what the runtime needs to run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from authorizations.api import router
from authorizations.domain.policy import AuthorizationPolicy
from authorizations.handlers import registry
from authorizations.models import Base, platform
from authorizations.policy_file import load_policy
from authorizations.repository import AuthorizationsUnitOfWork
from authorizations.settings import AuthorizationsSettings
from authorizations.timers import AuthorizationScheduler
from shared.runtime import Background, ServiceDefinition, ServiceRuntime
from shared.scheduler import Clock, SystemClock

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def definition(*, clock: Clock | None = None, policy: AuthorizationPolicy | None = None) -> ServiceDefinition:
    """The authorizations service as the runtime sees it; tests pass a clock and a policy.

    The policy file named in the settings is read and validated when the runtime is built, so a bad file
    stops the service at start (PolicyFileError) instead of at the first referral.
    """

    def ports(runtime: ServiceRuntime) -> dict[str, Any]:
        settings = runtime.settings
        if not isinstance(settings, AuthorizationsSettings):
            settings = AuthorizationsSettings()
        return {"clock": clock or SystemClock(), "settings": settings,
                "policy": policy or load_policy(settings.policy_file)}

    def scheduler(runtime: ServiceRuntime) -> Background:
        return AuthorizationScheduler(runtime)

    return ServiceDefinition(
        name="authorizations",
        metadata=Base.metadata,
        tables=platform,
        handlers=registry,
        unit_of_work=AuthorizationsUnitOfWork,
        migrations=MIGRATIONS,
        routers=[router],
        settings=AuthorizationsSettings,
        background=[scheduler],
        ports=ports,
    )
