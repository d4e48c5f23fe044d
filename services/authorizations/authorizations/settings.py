"""Settings of the authorizations service (environment prefix `AUTHORIZATIONS_`)."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class AuthorizationsSettings(ServiceSettings):
    """Settings of the authorizations service."""

    service_name: ClassVar[str] = "authorizations"
    model_config = SettingsConfigDict(env_prefix="AUTHORIZATIONS_", extra="ignore")

    port: int = Field(8002, description="Port `calhub serve authorizations` listens on.")
    policy_file: Path | None = Field(
        None, description="YAML or JSON file of per-MCP terms (calendars, deadline overrides, expiring lead "
        "times, trusted providers, MIF statuses); validated at start. None: the rules' defaults.")
    run_scheduler: bool = Field(True, description="Fire this service's timers (deadlines, expiry sweeps).")
    scheduler_poll_seconds: float = Field(1.0, gt=0, description="How often the scheduler looks for due timers.")
    scheduler_batch_size: int = Field(200, ge=1, description="Timers fired per transaction at most.")
    sweep_chunk: int = Field(2000, ge=1, description="Authorizations one expiry sweep handles per transaction; "
                             "more are handled by an immediate follow-up sweep.")
    sweep_time: time = Field(time(0, 0), description="Pacific time of day the daily expiry sweep runs.")
