"""Composition root of the sftp-gateway service: what the runtime needs to run it."""

from __future__ import annotations

from pathlib import Path

from sftp_gateway.api import router
from sftp_gateway.handlers import registry
from sftp_gateway.models import Base, platform
from sftp_gateway.repository import SftpGatewayUnitOfWork
from sftp_gateway.settings import SftpGatewaySettings
from shared.runtime import ServiceDefinition

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def definition() -> ServiceDefinition:
    """The sftp-gateway service as the runtime sees it."""
    return ServiceDefinition(
        name="sftp-gateway",
        metadata=Base.metadata,
        tables=platform,
        handlers=registry,
        unit_of_work=SftpGatewayUnitOfWork,
        migrations=MIGRATIONS,
        routers=[router],
        settings=SftpGatewaySettings,
    )
