"""Settings of the ops service (environment prefix `OPS_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class OpsSettings(ServiceSettings):
    """Settings of the ops service."""

    service_name: ClassVar[str] = "ops"
    model_config = SettingsConfigDict(env_prefix="OPS_", extra="ignore")

    port: int = Field(8006, description="Port `calhub serve ops` listens on.")
