"""Entry point of the referrals service in distributed mode: `calhub serve referrals`."""

from __future__ import annotations

from fastapi import FastAPI

from referrals.bootstrap import definition
from referrals.settings import ReferralsSettings
from shared.distributed import create_service_app
from shared.settings import PlatformSettings


def create_app(platform: PlatformSettings | None = None, settings: ReferralsSettings | None = None) -> FastAPI:
    """The referrals service's app on Kafka and PostgreSQL; nothing connects before startup."""
    return create_service_app(definition(), platform or PlatformSettings(), settings or ReferralsSettings())
