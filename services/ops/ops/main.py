"""Entry point of the ops service in distributed mode: `calhub serve ops`."""

from __future__ import annotations

from fastapi import FastAPI

from ops.bootstrap import definition
from ops.settings import OpsSettings
from shared.distributed import create_service_app
from shared.settings import PlatformSettings


def create_app(platform: PlatformSettings | None = None, settings: OpsSettings | None = None) -> FastAPI:
    """The ops service's app on Kafka and PostgreSQL; nothing connects before startup."""
    return create_service_app(definition(), platform or PlatformSettings(), settings or OpsSettings())
