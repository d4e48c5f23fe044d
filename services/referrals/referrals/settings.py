"""Settings of the referrals service (environment prefix `REFERRALS_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ReferralsSettings(ServiceSettings):
    """Settings of the referrals service."""

    service_name: ClassVar[str] = "referrals"
    model_config = SettingsConfigDict(env_prefix="REFERRALS_", extra="ignore")

    port: int = Field(8001, description="Port `calhub serve referrals` listens on.")
