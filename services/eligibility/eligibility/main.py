"""Entry point of the eligibility service in distributed mode: `calhub serve eligibility`."""

from __future__ import annotations

from fastapi import FastAPI

from eligibility.bootstrap import definition
from eligibility.settings import EligibilitySettings
from shared.distributed import create_service_app
from shared.settings import PlatformSettings


def create_app(platform: PlatformSettings | None = None, settings: EligibilitySettings | None = None) -> FastAPI:
    """The eligibility service's app on Kafka and PostgreSQL; nothing connects before startup."""
    return create_service_app(definition(), platform or PlatformSettings(), settings or EligibilitySettings())
