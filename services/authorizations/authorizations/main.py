"""Entry point of the authorizations service in distributed mode: `calhub serve authorizations`."""

from __future__ import annotations

from fastapi import FastAPI

from authorizations.bootstrap import definition
from authorizations.settings import AuthorizationsSettings
from shared.distributed import create_service_app
from shared.settings import PlatformSettings


def create_app(platform: PlatformSettings | None = None, settings: AuthorizationsSettings | None = None) -> FastAPI:
    """The authorizations service's app on Kafka and PostgreSQL; nothing connects before startup."""
    return create_service_app(definition(), platform or PlatformSettings(), settings or AuthorizationsSettings())
