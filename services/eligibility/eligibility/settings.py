"""Settings of the eligibility service (environment prefix `ELIGIBILITY_`)."""

from __future__ import annotations

from datetime import time
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class TradingPartner(BaseModel):
    """How CalHub addresses one MCP in X12 (ISA/GS receiver, 2100A payer id) and when its batch runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interchange_qualifier: str = Field("ZZ", description="ISA07.")
    interchange_id: str | None = Field(None, description="ISA08 (default: the plan code in capitals).")
    application_code: str | None = Field(None, description="GS03 (default: the interchange id).")
    payer_id: str | None = Field(None, description="2100A NM109 with NM108 PI (default: the interchange id).")
    day_of_month: int | None = Field(None, ge=1, le=31, description="Monthly batch day (default: the service's).")
    max_per_transaction: int | None = Field(None, ge=1, description="Members per 270 transaction set.")


class EligibilitySettings(ServiceSettings):
    """Settings of the eligibility service."""

    service_name: ClassVar[str] = "eligibility"
    model_config = SettingsConfigDict(env_prefix="ELIGIBILITY_", extra="ignore")

    port: int = Field(8004, description="Port `calhub serve eligibility` listens on.")
    hub_name: str = Field("CalHub Hub", description="The hub as 2100B names it in every 270.")
    hub_npi: str = Field("1234567893", description="The hub's NPI (2100B NM109, qualifier XX).")
    submitter_qualifier: str = Field("ZZ", description="ISA05.")
    submitter_id: str = Field("CALHUB", description="ISA06 and GS02 of every 270.")
    trace_originator: str = Field(
        "9CALHUB000", min_length=10, max_length=10,
        description="TRN03 of every 270: '1' + the hub's EIN, or '9' + a 9-character id the MCPs know.")
    usage_indicator: str = Field("P", pattern="^[PT]$", description="ISA15: P production, T test.")
    batch_day_of_month: int = Field(1, ge=1, le=31, description="Day of the month the monthly 270s run.")
    batch_time: time = Field(time(6, 0), description="Pacific time of day the monthly 270s run.")
    max_per_transaction: int = Field(
        99, ge=1, description="Members per 270 transaction set [unconfirmed payer limit; per MCP in partners].")
    realtime_flush_minutes: float = Field(
        15, ge=0, description="Queued real-time checks wait at most this long for the next 270.")
    recheck_interval_days: int = Field(35, ge=1, description="Older verifications are flagged as due a re-check.")
    partners: dict[str, TradingPartner] = Field(
        default={}, description='Per-MCP X12 addressing and schedule, JSON: {"lacare": {...}}.')
    scheduler_poll_seconds: float = Field(5.0, gt=0, description="How often due timers are looked for.")

    def partner(self, mcp_code: str) -> TradingPartner:
        """The trading partner settings of an MCP (defaults when none are configured)."""
        return self.partners.get(mcp_code, TradingPartner())
