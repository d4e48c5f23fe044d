"""Settings of the referrals service (environment prefix `REFERRALS_`)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings
from shared.webhooks import WebhookPolicy


class ReferralsSettings(ServiceSettings):
    """Settings of the referrals service."""

    service_name: ClassVar[str] = "referrals"
    model_config = SettingsConfigDict(env_prefix="REFERRALS_", extra="ignore")

    port: int = Field(8001, description="Port `calhub serve referrals` listens on.")
    webhook_allow_http: bool = Field(
        False, description="Accept plain http:// callback URLs (tests and the embedded demo only; never in "
        "production: webhook bodies then travel unencrypted).")
    webhook_max_attempts: int = Field(12, ge=1, le=50, description="Attempts per webhook delivery before it "
                                      "is marked failed (it can then be re-sent).")
    webhook_initial_backoff_seconds: float = Field(30.0, gt=0, description="Wait after the first failed "
                                                   "attempt; doubles after each further failure.")
    webhook_max_backoff_seconds: float = Field(6 * 3600.0, gt=0, description="Longest wait between attempts.")
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60, description="HTTP timeout of one attempt.")
    webhook_poll_interval_seconds: float = Field(1.0, gt=0, description="How often due deliveries are looked "
                                                 "for (a commit that queues one wakes the deliverer at once).")

    def webhook_policy(self) -> WebhookPolicy:
        """The webhook delivery policy these settings describe."""
        return WebhookPolicy(
            max_attempts=self.webhook_max_attempts,
            initial_backoff=timedelta(seconds=self.webhook_initial_backoff_seconds),
            max_backoff=timedelta(seconds=self.webhook_max_backoff_seconds),
            timeout_seconds=self.webhook_timeout_seconds,
            poll_interval=self.webhook_poll_interval_seconds,
            allow_http=self.webhook_allow_http,
        )
