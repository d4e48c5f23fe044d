"""Settings of the claims service (environment prefix `CLAIMS_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ClaimsSettings(ServiceSettings):
    """Settings of the claims service."""

    service_name: ClassVar[str] = "claims"
    model_config = SettingsConfigDict(env_prefix="CLAIMS_", extra="ignore")

    port: int = Field(8003, description="Port `calhub serve claims` listens on.")
