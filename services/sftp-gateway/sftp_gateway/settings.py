"""Settings of the sftp-gateway service (environment prefix `SFTP_GATEWAY_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class SftpGatewaySettings(ServiceSettings):
    """Settings of the sftp-gateway service."""

    service_name: ClassVar[str] = "sftp_gateway"
    model_config = SettingsConfigDict(env_prefix="SFTP_GATEWAY_", extra="ignore")

    port: int = Field(8005, description="Port `calhub serve sftp-gateway` listens on.")
