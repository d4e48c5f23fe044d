"""The adapters the gateway's units of work carry (built once per runtime by bootstrap)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sftp_gateway.jail import Jail
from sftp_gateway.pgp import Pgp
from sftp_gateway.profiles_store import ProfileCatalog
from sftp_gateway.settings import SftpGatewaySettings
from shared.filestore import FileStore


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass
class GatewayPorts:
    """File store, profiles, account folders, gpg keyring, settings and clock."""

    files: FileStore
    profiles: ProfileCatalog
    jail: Jail
    pgp: Pgp
    settings: SftpGatewaySettings
    clock: Clock
    data_dir: Path

    def keys_dir(self) -> Path:
        """Where relative client-key paths of profiles point."""
        return self.settings.keys_dir or self.data_dir / "sftp-gateway" / "keys"


def gateway_ports(uow: Any) -> GatewayPorts:
    """The gateway's ports from a unit of work (raises KeyError if bootstrap did not supply them)."""
    ports: GatewayPorts = uow.ports["gateway"]
    return ports
