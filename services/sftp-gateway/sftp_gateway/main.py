"""Entry point of the sftp-gateway service in distributed mode: `calhub serve sftp-gateway`."""

from __future__ import annotations

from fastapi import FastAPI

from sftp_gateway.bootstrap import definition
from sftp_gateway.settings import SftpGatewaySettings
from shared.distributed import create_service_app
from shared.settings import PlatformSettings


def create_app(platform: PlatformSettings | None = None, settings: SftpGatewaySettings | None = None) -> FastAPI:
    """The sftp-gateway service's app on Kafka and PostgreSQL; nothing connects before startup."""
    return create_service_app(definition(), platform or PlatformSettings(), settings or SftpGatewaySettings())
