"""Settings of the authorizations service (environment prefix `AUTHORIZATIONS_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AuthorizationsSettings(ServiceSettings):
    """Settings of the authorizations service."""

    service_name: ClassVar[str] = "authorizations"
    model_config = SettingsConfigDict(env_prefix="AUTHORIZATIONS_", extra="ignore")

    port: int = Field(8002, description="Port `calhub serve authorizations` listens on.")
