"""Composition root of the sftp-gateway service: what the runtime needs to run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sftp_gateway.api import router
from sftp_gateway.handlers import registry
from sftp_gateway.jail import Jail
from sftp_gateway.models import Base, platform
from sftp_gateway.pgp import Pgp
from sftp_gateway.ports import GatewayPorts
from sftp_gateway.profiles_store import ProfileCatalog
from sftp_gateway.remote import RemoteExchange
from sftp_gateway.repository import SftpGatewayUnitOfWork
from sftp_gateway.settings import SftpGatewaySettings
from sftp_gateway.sftp_server import SftpServerPart
from sftp_gateway.timers import ensure_timers, timers
from shared.filestore import FileStore
from shared.runtime import Background, ServiceDefinition, ServiceRuntime
from shared.scheduler import Scheduler, SystemClock

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class ProfileError(RuntimeError):
    """The profiles folder cannot be loaded at start: the gateway refuses to run on a broken configuration."""


def build_ports(runtime: ServiceRuntime) -> dict[str, Any]:
    """File store, profiles (loaded now), account folders, gpg keyring, clock."""
    settings = runtime.settings
    assert isinstance(settings, SftpGatewaySettings)
    data = runtime.platform.data_dir
    home = data / "sftp-gateway"
    catalog = ProfileCatalog(settings.profiles_dir)
    result = catalog.reload()
    if not result.ok:
        raise ProfileError("; ".join(result.errors))
    ports = GatewayPorts(
        files=FileStore(runtime.platform.file_store_path()),
        profiles=catalog,
        jail=Jail(settings.sftp_root or home / "accounts"),
        pgp=Pgp(settings.gnupg_home or home / "gnupg", settings.pgp_passphrase),
        settings=settings,
        clock=SystemClock(),
        data_dir=data,
    )
    return {"gateway": ports}


class SchedulerPart(Background):
    """The durable scheduler of the gateway's timers; makes sure every profile's schedules are pending."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.ports: GatewayPorts = runtime.ports["gateway"]
        self.scheduler: Scheduler[SftpGatewayUnitOfWork] = Scheduler(
            runtime.uow, timers, poll_interval=self.ports.settings.scheduler_poll_seconds,  # type: ignore[arg-type]
            clock=self.ports.clock)

    async def start(self) -> None:
        """Schedule what the profiles ask for, then run the loop."""
        async with self.runtime.uow() as uow:
            assert isinstance(uow, SftpGatewayUnitOfWork)
            await ensure_timers(uow, self.ports.profiles.all(), self.ports.clock.now())
            await uow.commit()
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop the loop."""
        await self.scheduler.stop()

    async def ready(self) -> dict[str, Any]:
        """Timers due and not fired yet."""
        return {"timers_due": await self.scheduler.pending_due()}


def definition() -> ServiceDefinition:
    """The sftp-gateway service as the runtime sees it."""
    return ServiceDefinition(
        name="sftp-gateway",
        metadata=Base.metadata,
        tables=platform,
        handlers=registry,
        unit_of_work=SftpGatewayUnitOfWork,
        migrations=MIGRATIONS,
        routers=[router],
        settings=SftpGatewaySettings,
        background=[SchedulerPart, SftpServerPart, RemoteExchange],
        ports=build_ports,
    )
