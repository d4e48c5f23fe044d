"""Distributed mode: one service per process on Kafka and PostgreSQL."""

from __future__ import annotations

import os

from fastapi import FastAPI

from shared.app import create_api
from shared.auth import DatabaseAuthenticator
from shared.bus.factory import create_bus
from shared.logs import configure_logging
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import PlatformSettings, ServiceSettings
from shared.telemetry import configure_tracing


def create_service_app(definition: ServiceDefinition, platform: PlatformSettings,
                       settings: ServiceSettings) -> FastAPI:
    """The app of one service: its runtime on the configured bus, API keys from the auth database.

    Raises ValueError when distributed mode lacks what it must never default: a PostgreSQL URL (a container's
    SQLite file would lose the outbox and timers with the container) and the member-id secret.
    """
    if platform.mode == "distributed":
        if not (settings.database_url or platform.database_url):
            raise ValueError("distributed mode needs CALHUB_DATABASE_URL (or the service's own DATABASE_URL)")
        if not os.environ.get("CALHUB_MEMBER_ID_SECRET"):
            raise ValueError("distributed mode needs CALHUB_MEMBER_ID_SECRET (the key of internal member ids)")
    configure_logging(platform.log_level, platform.log_format)
    configure_tracing(f"calhub-{definition.name}", platform.otel_exporter_otlp_endpoint)
    bus = create_bus(platform, client_id=f"calhub-{definition.name}")
    runtime = ServiceRuntime(definition=definition, platform=platform, settings=settings, bus=bus)
    return create_api(
        title=f"CalHub {definition.name}",
        bus=bus,
        runtimes=[runtime],
        authenticator=DatabaseAuthenticator(platform.auth_url()),
    )
