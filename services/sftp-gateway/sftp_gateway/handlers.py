"""Event handlers of the sftp-gateway service and its registry."""

from __future__ import annotations

from sftp_gateway.repository import SftpGatewayUnitOfWork
from shared.bus.registry import HandlerRegistry

registry: HandlerRegistry[SftpGatewayUnitOfWork] = HandlerRegistry()
