"""Test kit of the gateway: synthetic profiles with fresh keys, a running gateway, SFTP clients, events."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml
from sftp_gateway.bootstrap import definition
from sftp_gateway.ports import GatewayPorts
from sftp_gateway.remote import RemoteExchange
from sftp_gateway.repository import SftpGatewayUnitOfWork
from sftp_gateway.sftp_server import SftpServerPart

from shared.bus.base import Bus
from shared.bus.inprocess import InProcessBus
from shared.bus.message import decode
from shared.envelope import Envelope
from shared.testing.app import ServiceHarness, make_caller, service_harness

PACKAGED = Path(__file__).resolve().parents[1] / "sftp_gateway" / "profiles"
MCPS = ("healthnet", "lacare", "molina")
HUB = "hub-key"
KEYS = {
    HUB: make_caller("hub", "org_hub", scopes=("sftp-gateway:write", "admin")),
    "healthnet-key": make_caller("mcp", "org_healthnet", code="healthnet", scopes=("sftp-gateway:read",)),
    "lacare-key": make_caller("mcp", "org_lacare", code="lacare", scopes=("sftp-gateway:read",)),
    "cbo-key": make_caller("cbo", "org_cbo", scopes=("sftp-gateway:read",)),
    "nosope-key": make_caller("hub", "org_hub2", scopes=("referrals:read",)),
}


@dataclass
class Account:
    """An MCP's client identity: key pair on disk (OpenSSH format, 0600)."""

    mcp: str
    key: asyncssh.SSHKey
    key_path: Path


def make_accounts(folder: Path) -> dict[str, Account]:
    """A fresh ed25519 key per example MCP (never reused across tests)."""
    folder.mkdir(parents=True, exist_ok=True)
    accounts = {}
    for mcp in MCPS:
        key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{mcp}-test")
        path = folder / f"{mcp}_ed25519"
        path.write_bytes(key.export_private_key("openssh"))
        path.chmod(0o600)
        accounts[mcp] = Account(mcp, key, path)
    return accounts


def write_profiles(folder: Path, accounts: Mapping[str, Account],
                   change: Callable[[str, dict[str, Any]], None] | None = None) -> Path:
    """Copy the packaged example profiles with the test keys (and any change) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for mcp in MCPS:
        data = yaml.safe_load((PACKAGED / f"{mcp}.yaml").read_text())
        data["account"]["authorized_keys"] = [accounts[mcp].key.export_public_key().decode().strip()]
        if change is not None:
            change(mcp, data)
        (folder / f"{mcp}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


@dataclass
class Gateway:
    """A running gateway (harness + SFTP port) and helpers."""

    harness: ServiceHarness
    accounts: dict[str, Account]
    tmp: Path
    seen: dict[str, int] = field(default_factory=dict)

    @property
    def runtime(self) -> Any:
        return self.harness.runtimes["sftp-gateway"]

    @property
    def ports(self) -> GatewayPorts:
        ports: GatewayPorts = self.runtime.ports["gateway"]
        return ports

    @property
    def sftp(self) -> SftpServerPart:
        return next(p for p in self.runtime.background if isinstance(p, SftpServerPart))

    @property
    def remote(self) -> RemoteExchange:
        return next(p for p in self.runtime.background if isinstance(p, RemoteExchange))

    @property
    def port(self) -> int:
        assert self.sftp.port is not None
        return self.sftp.port

    @property
    def client(self) -> Any:
        return self.harness.client

    def headers(self, key: str = HUB, **extra: str) -> dict[str, str]:
        return self.harness.headers(key, **extra)

    @asynccontextmanager
    async def session(self, mcp: str, *, key: asyncssh.SSHKey | None = None,
                      username: str | None = None) -> AsyncIterator[asyncssh.SFTPClient]:
        """An asyncssh SFTP session as the MCP (or with another key / user name)."""
        async with asyncssh.connect("127.0.0.1", self.port, username=username or mcp,
                                    client_keys=[key or self.accounts[mcp].key], known_hosts=None,
                                    agent_path=None) as conn, conn.start_sftp_client() as sftp:
            yield sftp

    async def upload(self, mcp: str, name: str, content: bytes) -> None:
        """Upload with asyncssh into inbound/ and wait until the gateway processed it."""
        async with self.session(mcp) as sftp, sftp.open(f"/inbound/{name}", "wb") as handle:
            await handle.write(content)
        await self.settle()

    async def settle(self) -> None:
        """Wait for uploads being processed, then for the relay to publish."""
        await asyncio.sleep(0.05)
        await self.sftp.drain()
        await wait_for(self._outbox_empty)

    async def _outbox_empty(self) -> bool:
        return await self.runtime.relay.backlog() == 0

    def events(self, topic: str, event_type: str | None = None) -> list[Envelope[Any]]:
        """Every event on a logical topic of the in-process bus (optionally of one type)."""
        bus = self.harness.bus
        assert isinstance(bus, InProcessBus)
        envelopes = [decode(m) for m in bus.read(topic)]
        return [e for e in envelopes if event_type is None or e.type == event_type]

    async def files(self, **query: Any) -> list[dict[str, Any]]:
        response = await self.client.get("/v1/files", params=query, headers=self.headers())
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def uow(self) -> SftpGatewayUnitOfWork:
        """A unit of work of the gateway (typed)."""
        uow = self.runtime.uow()
        assert isinstance(uow, SftpGatewayUnitOfWork)
        return uow

    async def generate(self, mcp: str, kind: str, reporting_period: str) -> tuple[dict[str, Any], bytes]:
        """POST /v1/files/generate (hub) and read the file made: the answer and the file's bytes."""
        made = await self.client.post("/v1/files/generate", headers=self.headers(),
                                      json={"mcp_code": mcp, "kind": kind, "reporting_period": reporting_period})
        assert made.status_code == 201, made.text
        answer: dict[str, Any] = made.json()
        content = await self.client.get(f"/v1/files/{answer['file']['id']}/content", headers=self.headers())
        assert content.status_code == 200, content.text
        return answer, content.content

    def outbound(self, mcp: str) -> dict[str, bytes]:
        folder = self.ports.jail.outbound(self.accounts[mcp].mcp)
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:  # noqa: ASYNC109
    """Poll an async condition until true; fail the test after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_gateway(tmp: Path, monkeypatch: pytest.MonkeyPatch, *,
                          change: Callable[[str, dict[str, Any]], None] | None = None,
                          database_url: str | None = None, bus: Bus | None = None,
                          env: Mapping[str, str] | None = None,
                          accounts: dict[str, Account] | None = None) -> AsyncIterator[Gateway]:
    """Start the gateway on SQLite (or PostgreSQL) with test profiles and a free SFTP port."""
    accounts = accounts or make_accounts(tmp / "client-keys")
    profiles = write_profiles(tmp / "profiles", accounts, change)
    settings = {"SFTP_GATEWAY_SFTP_PORT": "0", "SFTP_GATEWAY_PROFILES_DIR": str(profiles),
                "SFTP_GATEWAY_SCHEDULER_POLL_SECONDS": "0.2", "SFTP_GATEWAY_GNUPG_HOME": str(tmp / "gnupg"),
                **(env or {})}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    async with service_harness([definition()], tmp / "data", keys=KEYS, database_url=database_url,
                               bus=bus) as harness:
        yield Gateway(harness, accounts, tmp)


def openssh_sftp(gateway: Gateway, mcp: str, commands: str, *, key_path: Path | None = None,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run Debian's OpenSSH `sftp` in batch mode with key auth against the gateway."""
    batch = gateway.tmp / f"batch-{os.getpid()}-{mcp}.txt"
    batch.write_text(commands)
    known_hosts = gateway.tmp / "known_hosts"
    return subprocess.run(
        ["/usr/bin/sftp", "-b", str(batch), "-P", str(gateway.port), "-i", str(key_path or
                                                                               gateway.accounts[mcp].key_path),
         "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={known_hosts}",
         "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no", "-o", "BatchMode=yes",
         "-o", "ConnectTimeout=10", f"{mcp}@127.0.0.1"],
        capture_output=True, text=True, timeout=60, cwd=cwd or gateway.tmp, check=False)


# --------------------------------------------------------------------------------------- synthetic files

HN_MIF_HEADER = ("Plan_ID,Member_CIN,Plan_Member_ID,Member_Last_Name,Member_First_Name,Member_Middle_Name,"
                 "Member_DOB,Member_Gender,Preferred_Language,Residential_Address,Residential_City,"
                 "Residential_State,Residential_Zip,Member_Phone,Homeless_Indicator,POF,ECM_Benefit_Status,"
                 "Authorization_ID,Authorization_Start_Date,Authorization_End_Date,ECM_Provider_NPI,"
                 "ECM_Provider_Name,Acuity_Tier,Reporting_Period")


def hn_mif_row(n: int, *, cin: str | None = None, dob: str = "01/15/1980", status: str = "A",
               pof: str = "1a;3", address: str = '"100 Main St, Apt 4"') -> str:
    """One synthetic Health Net MIF row (a quoted address with a comma inside)."""
    cin = cin or f"{90000000 + n:08d}A"
    return (f"HN-CA-ECM,{cin},HN{n:07d},Testperson,Member{n},,{dob},F,English,{address},Los Angeles,CA,90001,"
            f"5555550{n % 1000:03d},N,{pof},{status},AUTH{n:06d},10/01/2026,09/30/2027,1234567893,"
            f"Golden State Care Hub,2,202610")


def hn_mif(rows: int = 3, *, extra_rows: tuple[str, ...] = (), eol: str = "\r\n") -> bytes:
    """A Health Net MIF with `rows` good rows plus any given rows."""
    lines = [HN_MIF_HEADER, *(hn_mif_row(i + 1) for i in range(rows)), *extra_rows]
    return (eol.join(lines) + eol).encode()


def x12(functional_code: str = "HP", version: str = "005010X221A1", body: list[list[str]] | None = None) -> bytes:
    """A small synthetic X12 interchange (default: an 835 shell)."""
    from datetime import datetime

    from shared.x12.envelope import EnvelopeSpec, Party, build_interchange

    spec = EnvelopeSpec(sender=Party("ZZ", "HEALTHNET", "HEALTHNET"), receiver=Party("ZZ", "GSCHUB", "GSCHUB"),
                        interchange_control_number=101, group_control_number=101, functional_code=functional_code,
                        version=version, created=datetime(2026, 11, 20, 9, 30))
    segments = body or [["BPR", "I", "100.00", "C", "ACH"], ["TRN", "1", "TRACE0001", "1234567890"]]
    return build_interchange(spec, [segments]).encode()
