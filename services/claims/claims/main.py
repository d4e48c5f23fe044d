"""Entry point of the claims service in distributed mode: `calhub serve claims`."""

from __future__ import annotations

from fastapi import FastAPI

from claims.bootstrap import definition
from claims.settings import ClaimsSettings
from shared.distributed import create_service_app
from shared.settings import PlatformSettings


def create_app(platform: PlatformSettings | None = None, settings: ClaimsSettings | None = None) -> FastAPI:
    """The claims service's app on Kafka and PostgreSQL; nothing connects before startup."""
    return create_service_app(definition(), platform or PlatformSettings(), settings or ClaimsSettings())
