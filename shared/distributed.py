"""Distributed mode: one service per process on Kafka and PostgreSQL."""

from __future__ import annotations

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
    """The app of one service: its runtime on the configured bus, API keys from the auth database."""
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
