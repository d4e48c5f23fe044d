"""Settings of the ops service (environment prefix `OPS_`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings
from shared.webhooks import WebhookPolicy


class OpsSettings(ServiceSettings):
    """Settings of the ops service."""

    service_name: ClassVar[str] = "ops"
    model_config = SettingsConfigDict(env_prefix="OPS_", extra="ignore")

    port: int = Field(8006, description="Port `calhub serve ops` listens on.")

    # Journal
    run_journal: bool = Field(True, description="Consume every calhub topic and dead-letter topic into the journal.")
    journal_retention_days: int = Field(
        90, ge=1, description="Journal entries older than this are purged (pending dead letters are kept until "
        "replayed or discarded).")
    purge_interval_minutes: int = Field(60, ge=1, description="How often the retention purge runs.")
    purge_chunk: int = Field(5000, ge=100, description="Journal entries deleted per purge statement at most.")
    journal_max_attempts: int = Field(
        1000, ge=1, description="Attempts to journal a message before it is dead-lettered. High on purpose: the "
        "journal only fails when its database does, and it should wait that out rather than dead-letter.")

    # Boards, lag and alerts
    alert_interval_seconds: int = Field(60, ge=5, description="How often alert rules and lag are evaluated.")
    decision_due_soon_hours: int = Field(24, ge=1, description="'Due soon' window of the authorization-decision board.")
    expiring_within_days: int = Field(30, ge=1, description="Window of the expiring-authorizations board.")
    files_window_days: int = Field(30, ge=1, description="Window of the files received / quarantined board.")
    flow_window_minutes: int = Field(60, ge=5, le=1440, description="Window of the events-per-minute chart.")
    stall_after_minutes: int = Field(
        10, ge=1, description="A consumer with lag whose committed offsets have not moved for this long is stalled.")
    # [rule] MCP payment standard: 90% of clean claims within 30 days of receipt, 99% within 90 (CALAIM.md, Money).
    timely_payment_target_30: float = Field(0.90, ge=0, le=1, description="Share of claims to be paid within 30 days.")
    timely_payment_target_90: float = Field(0.99, ge=0, le=1, description="Share of claims to be paid within 90 days.")
    consumer_groups: dict[str, list[str]] = Field(
        default_factory=dict, description="Consumer groups and the topics they read, for lag (JSON). Empty: "
        "discovered from the bus (the in-process bus's groups; Kafka's consumer groups with committed offsets).")

    # Health of the other services in distributed mode
    service_urls: dict[str, str] = Field(
        default_factory=dict, description="Distributed mode: service name → base URL whose /ready is polled "
        '(JSON, e.g. {"referrals": "http://referrals:8001"}). Embedded mode reads the runtimes directly.')
    health_timeout_seconds: float = Field(2.0, gt=0, description="Timeout of one /ready poll.")

    # Console
    session_secret: SecretStr | None = Field(
        None, description="Key that signs console session cookies. Embedded mode: generated once into the data "
        "directory when unset. Distributed mode: set it (all replicas alike); unset, each process generates its "
        "own and sessions do not survive a restart.")
    session_hours: float = Field(8.0, gt=0, le=24, description="Console session lifetime (absolute).")
    cookie_secure: bool | None = Field(
        None, description="Send the session cookie with the Secure flag. None: only when the request came over "
        "https.")
    trace_url_template: str = Field(
        "http://localhost:16686/trace/{trace_id}", description="Link from an event to its trace (e.g. Jaeger); "
        "{trace_id} is replaced by the 32-hex trace id.")

    # Alert delivery (shared/webhooks.py)
    alert_webhook_allow_http: bool = Field(False, description="Allow plain http:// alert webhooks (tests, demo).")
    alert_webhook_max_attempts: int = Field(12, ge=1, description="Attempts per alert delivery before it fails.")
    alert_webhook_initial_backoff_seconds: float = Field(30.0, gt=0, description="First retry delay of a delivery.")

    def webhook_policy(self) -> WebhookPolicy:
        """The retry and URL policy of alert deliveries."""
        from datetime import timedelta

        return WebhookPolicy(max_attempts=self.alert_webhook_max_attempts,
                             initial_backoff=timedelta(seconds=self.alert_webhook_initial_backoff_seconds),
                             allow_http=self.alert_webhook_allow_http)
