"""Composition root of the claims service: what the runtime needs to run it, and its ports."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from claims.api import router
from claims.domain.configuration import BillingConfiguration, load_configuration
from claims.handlers import registry
from claims.models import Base, platform
from claims.repository import ClaimsUnitOfWork
from claims.scheduling import BatchScheduling
from claims.settings import ClaimsSettings
from shared.filestore import FileStore
from shared.runtime import Background, ServiceDefinition, ServiceRuntime
from shared.scheduler import Clock, SystemClock

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
EXAMPLE_CONFIG = Path(__file__).resolve().parent / "data" / "billing.example.yaml"


def read_configuration(path: Path | None) -> BillingConfiguration:
    """Load a billing configuration file (YAML or JSON); the packaged example when `path` is None.

    Raises FileNotFoundError, or pydantic.ValidationError naming the bad field.
    """
    source = path or EXAMPLE_CONFIG
    text = source.read_text(encoding="utf-8")
    data = json.loads(text) if source.suffix == ".json" else yaml.safe_load(text)
    return load_configuration(data)


def definition(*, clock: Clock | None = None, billing: BillingConfiguration | None = None) -> ServiceDefinition:
    """The claims service as the runtime sees it; tests pass a fixed clock or their own billing setup."""

    def ports(runtime: ServiceRuntime) -> dict[str, Any]:
        settings = runtime.settings
        config = billing or read_configuration(getattr(settings, "billing_config", None))
        return {"files": FileStore(runtime.platform.file_store_path()), "clock": clock or SystemClock(),
                "billing": config, "settings": settings}

    def scheduling(runtime: ServiceRuntime) -> Background:
        if not getattr(runtime.settings, "run_batch_schedule", True):
            return Background()
        return BatchScheduling(runtime)

    background: list[Callable[[ServiceRuntime], Background]] = [scheduling]
    return ServiceDefinition(
        name="claims",
        metadata=Base.metadata,
        tables=platform,
        handlers=registry,
        unit_of_work=ClaimsUnitOfWork,
        migrations=MIGRATIONS,
        routers=[router],
        settings=ClaimsSettings,
        background=background,
        ports=ports,
    )
