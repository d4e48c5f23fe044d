"""Embedded mode: every service in one process and on one port, SQLite files, the in-process bus."""

from __future__ import annotations

from fastapi import FastAPI

from calhub.services import all_definitions
from shared.app import Hook, create_api
from shared.auth import DatabaseAuthenticator
from shared.bus.inprocess import InProcessBus
from shared.runtime import ServiceRuntime
from shared.settings import PlatformSettings

DESCRIPTION = (
    "CalHub in embedded mode: referrals, authorizations, eligibility, claims, the SFTP gateway and ops in one "
    "process. Authenticate with `Authorization: Bearer <key>` (keys from `calhub admin create-key`, or the demo "
    "keys printed by `calhub run --demo`)."
)


def create_embedded_app(platform: PlatformSettings, *, on_started: list[Hook] | None = None) -> FastAPI:
    """The whole of CalHub as one app; the data directory holds one SQLite file per service."""
    platform = platform.model_copy(update={"mode": "embedded"})
    platform.data_dir.mkdir(parents=True, exist_ok=True)
    # The bus log is a file too: events published but not yet handled survive a crash or restart.
    bus = InProcessBus(partitions=platform.kafka_partitions, batch_size=platform.consumer_batch_size,
                       log_path=platform.data_dir / "bus.db")
    runtimes = [ServiceRuntime(definition=d, platform=platform, settings=d.settings(), bus=bus)
                for d in all_definitions()]
    return create_api(
        title="CalHub",
        description=DESCRIPTION,
        bus=bus,
        runtimes=runtimes,
        authenticator=DatabaseAuthenticator(platform.auth_url()),
        on_started=on_started or [],
    )
