"""Settings of the eligibility service (environment prefix `ELIGIBILITY_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class EligibilitySettings(ServiceSettings):
    """Settings of the eligibility service."""

    service_name: ClassVar[str] = "eligibility"
    model_config = SettingsConfigDict(env_prefix="ELIGIBILITY_", extra="ignore")

    port: int = Field(8004, description="Port `calhub serve eligibility` listens on.")
