"""Settings of the claims service (environment prefix `CLAIMS_`)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ClaimsSettings(ServiceSettings):
    """Settings of the claims service."""

    service_name: ClassVar[str] = "claims"
    model_config = SettingsConfigDict(env_prefix="CLAIMS_", extra="ignore")

    port: int = Field(8003, description="Port `calhub serve claims` listens on.")
    billing_config: Path | None = Field(
        None, description="YAML or JSON file with the hub's billing identity, CBO billing identities, and each "
        "MCP's billing profile and fee schedules. Unset: the packaged example (demo MCPs, example rates).")
    validate_batches: bool = Field(True, description="Validate every 837P with pyx12 and CalHub's rules before it "
                                   "leaves (turn off only in benchmarks).")
    max_claims_per_batch: int = Field(50_000, ge=1, description="Claims sealed into one file at most; the rest "
                                      "wait for the next batch.")
    run_batch_schedule: bool = Field(True, description="Run scheduled batches for MCPs whose profile has a "
                                     "schedule.")
    schedule_poll_seconds: float = Field(30.0, gt=0, description="How often the batch scheduler looks for due "
                                         "timers.")
