"""Composition root of the ops service: what the runtime needs to run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ops.api import router
from ops.console import router as console_router
from ops.console.session import session_secret
from ops.handlers import registry
from ops.journal import JournalBackground
from ops.models import Base, platform, webhooks
from ops.monitor import MonitorBackground, TimerBackground, settings_of
from ops.repository import OpsUnitOfWork
from ops.settings import OpsSettings
from shared.runtime import Background, ServiceDefinition, ServiceRuntime
from shared.webhooks import WebhookPolicy, WebhookSender, webhook_background

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _ports(runtime: ServiceRuntime) -> dict[str, Any]:
    settings = settings_of(runtime)
    secret = settings.session_secret.get_secret_value() if settings.session_secret else None
    return {"settings": settings,
            "session_secret": session_secret(secret, mode=runtime.platform.mode,
                                              data_dir=runtime.platform.data_dir)}


def _policy(runtime: ServiceRuntime) -> WebhookPolicy:
    return settings_of(runtime).webhook_policy()


def _journal(runtime: ServiceRuntime) -> Background:
    return JournalBackground(runtime)


def _monitor(runtime: ServiceRuntime) -> Background:
    return MonitorBackground(runtime)


def _timers(runtime: ServiceRuntime) -> Background:
    return TimerBackground(runtime)


def definition(*, webhook_sender: WebhookSender | None = None) -> ServiceDefinition:
    """The ops service as the runtime sees it: journal consumer, monitor, retention timer, alert webhooks,
    the JSON API under /v1/ops and the console under /ops. Tests pass a webhook sender."""
    sender_of = (lambda _runtime: webhook_sender) if webhook_sender is not None else None
    return ServiceDefinition(
        name="ops",
        metadata=Base.metadata,
        tables=platform,
        handlers=registry,
        unit_of_work=OpsUnitOfWork,
        migrations=MIGRATIONS,
        routers=[router, console_router],
        settings=OpsSettings,
        background=[_journal, _timers, webhook_background(webhooks, _policy, sender_of), _monitor],
        ports=_ports,
    )
