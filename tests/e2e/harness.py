"""Distributed-mode harness of the end-to-end tests: every service in its own `calhub serve` process on the real
PostgreSQL and Kafka, organizations and API keys in the auth schema, SFTP sessions as an MCP, infrastructure
faults (kill -9, broker stop, PostgreSQL restart) and the accounting that proves nothing was lost or doubled.

The tests talk to the services only as their users do (HTTP with API keys, SFTP with an MCP's key). Where a fact
has no API yet, the accounting reads a service's schema read-only and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import httpx
import yaml
from sqlalchemy import text

from shared.auth import AuthStore, create_auth_schema
from shared.db import create_engine
from shared.testing import polling

REPO = Path(__file__).resolve().parents[2]
DEV_SERVICES = REPO / "scripts" / "dev-services.sh"
# Start order: producers of the earliest events first is not required (Kafka keeps them), but the gateway's SFTP
# port and ops' journal are wanted early by the scenarios.
SERVICES: tuple[str, ...] = ("referrals", "authorizations", "claims", "eligibility", "sftp-gateway", "ops")
SCHEMAS: dict[str, str] = {"referrals": "referrals", "authorizations": "authorizations", "claims": "claims",
                           "eligibility": "eligibility", "sftp-gateway": "sftp_gateway", "ops": "ops"}
MCPS: tuple[str, ...] = ("lacare", "healthnet", "molina")
# A valid NPI (Luhn with prefix 80840) for CBO A as an ECM provider; 1234567893 is the hub's.
CBO_A_NPI = "1245319599"
CBO_B_NPI = "1679576722"
HUB_NPI = "1234567893"
OVERSIZE_LIMIT = 1024 * 1024  # healthnet's max_file_bytes in the e2e profiles

T = TypeVar("T")


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def calhub_command() -> list[str]:
    """The `calhub` entry point of this environment (the module when the script is not on PATH)."""
    script = shutil.which("calhub")
    return [script] if script else [sys.executable, "-m", "calhub.cli"]


# What a probe may raise while the cluster converges (a service restarting refuses connections): "not yet".
NOT_YET: tuple[type[BaseException], ...] = (httpx.HTTPError, OSError, AssertionError, KeyError)


async def eventually(probe: Callable[[], Awaitable[T | None]], *, within: float = 60.0, interval: float = 0.5,
                     what: str = "condition") -> T:
    """`shared.testing.polling.eventually` with the scenarios' defaults: poll `probe` every `interval` seconds
    until it returns a truthy value (returned) or `within` seconds pass (AssertionError).

    Exceptions in NOT_YET count as "not yet"; the last one (or the last falsy value) is reported if time runs out.
    """
    return await polling.eventually(probe, within=within, interval=interval, what=what, retry_on=NOT_YET)


# ------------------------------------------------------------------------------------------------ processes

@dataclass
class ServiceProcess:
    """One `calhub serve` process: a service instance with its HTTP port and log file."""

    name: str
    instance: int
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class Cluster:
    """Every CalHub service as its own process in distributed mode, isolated per test session.

    Isolation: a unique schema suffix (each service's schema + suffix on the shared PostgreSQL), a unique topic
    prefix on the shared Kafka, its own data and file-store directories, its own organizations and keys in the
    fixed `auth` schema (MCP organizations are shared by plan code: the code is unique in auth.organization).
    """

    def __init__(self, root: Path, *, database_url: str, kafka: str) -> None:
        self.root = root
        self.database_url = database_url
        self.kafka = kafka
        self.token = uuid.uuid4().hex[:8]
        self.schema_suffix = f"_e2e{self.token}"
        self.topic_prefix = f"e2e{self.token}."
        self.data_dir = root / "data"
        self.files_dir = root / "files"
        self.logs_dir = root / "logs"
        self.config_dir = root / "config"
        for folder in (self.data_dir, self.files_dir, self.logs_dir, self.config_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.processes: dict[tuple[str, int], ServiceProcess] = {}
        self.extra_env: dict[str, dict[str, str]] = {name: {} for name in SERVICES}
        self.tenants: Tenants | None = None
        self.mcp_keys: dict[str, asyncssh.SSHKey] = {}
        self.sftp_port = free_port()

    # ---------------------------------------------------------------- environment

    def base_env(self) -> dict[str, str]:
        """The environment every service process shares (nothing of the outer CALHUB_* leaks in)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CALHUB_", "SFTP_GATEWAY_", "CLAIMS_",
                                                                        "REFERRALS_", "AUTHORIZATIONS_",
                                                                        "ELIGIBILITY_", "OPS_"))}
        env.update({
            "CALHUB_MODE": "distributed",
            "CALHUB_DATABASE_URL": self.database_url,
            "CALHUB_AUTH_DATABASE_URL": self.database_url,
            "CALHUB_SCHEMA_SUFFIX": self.schema_suffix,
            "CALHUB_KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "CALHUB_TOPIC_PREFIX": self.topic_prefix,
            "CALHUB_KAFKA_PARTITIONS": "6",
            "CALHUB_DATA_DIR": str(self.data_dir),
            "CALHUB_FILE_STORE_DIR": str(self.files_dir),
            "CALHUB_MEMBER_ID_SECRET": f"e2e-member-secret-{self.token}",
            "CALHUB_LOG_FORMAT": "json",
            "CALHUB_LOG_LEVEL": "INFO",
            # Fail fast enough that a poison message reaches the dead letters within a test.
            "CALHUB_CONSUMER_MAX_ATTEMPTS": "3",
            "PYTHONUNBUFFERED": "1",
            "SFTP_GATEWAY_SFTP_PORT": str(self.sftp_port),
            "SFTP_GATEWAY_PROFILES_DIR": str(self.config_dir / "profiles"),
            "SFTP_GATEWAY_SCHEDULER_POLL_SECONDS": "0.5",
            "AUTHORIZATIONS_POLICY_FILE": str(self.config_dir / "authorizations-policy.yaml"),
            "AUTHORIZATIONS_SCHEDULER_POLL_SECONDS": "0.5",
            "CLAIMS_BILLING_CONFIG": str(self.config_dir / "billing.yaml"),
            "REFERRALS_WEBHOOK_ALLOW_HTTP": "true",
            "REFERRALS_WEBHOOK_POLL_INTERVAL_SECONDS": "0.2",
            "REFERRALS_WEBHOOK_INITIAL_BACKOFF_SECONDS": "0.2",
            "REFERRALS_WEBHOOK_MAX_BACKOFF_SECONDS": "1",
        })
        return env

    def service_env(self, name: str) -> dict[str, str]:
        env = self.base_env()
        env.update(self.extra_env.get(name, {}))
        return env

    # ---------------------------------------------------------------- configuration files

    def write_configuration(self, tenants: Tenants) -> None:
        """Gateway profiles with fresh SFTP keys, the authorizations policy and the claims billing setup, all
        naming this session's organizations."""
        from sftp_gateway.settings import PACKAGED_PROFILES  # packaged example profiles (data, not code paths)

        profiles = self.config_dir / "profiles"
        profiles.mkdir(exist_ok=True)
        keys_dir = self.config_dir / "keys"
        keys_dir.mkdir(exist_ok=True)
        for mcp in MCPS:
            key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{mcp}-e2e")
            self.mcp_keys[mcp] = key
            path = keys_dir / f"{mcp}_ed25519"
            path.write_bytes(key.export_private_key("openssh"))
            path.chmod(0o600)
            data = yaml.safe_load((PACKAGED_PROFILES / f"{mcp}.yaml").read_text())
            data["account"]["authorized_keys"] = [key.export_public_key().decode().strip()]
            # Scenarios post files whenever they like; the expected-file calendar is not under test here.
            data.pop("remote", None)
            if mcp == "healthnet":  # the oversized-upload test needs a limit it can exceed quickly
                data["limits"] = {"max_file_bytes": OVERSIZE_LIMIT, "max_account_bytes": 64 * OVERSIZE_LIMIT}
            (profiles / f"{mcp}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        policy = {"providers": {CBO_A_NPI: tenants.cbo_a.organization_id, CBO_B_NPI: tenants.cbo_b.organization_id}}
        (self.config_dir / "authorizations-policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
        from claims.domain.configuration import load_configuration  # validates the file before services read it

        billing = billing_configuration(tenants)
        load_configuration(billing)
        (self.config_dir / "billing.yaml").write_text(yaml.safe_dump(billing, sort_keys=False))

    # ---------------------------------------------------------------- process control

    def start(self, name: str, instance: int = 0, *, wait: bool = True, timeout: float = 120.0,
              env: Mapping[str, str] | None = None) -> ServiceProcess:
        """Start (or restart) one instance of a service; wait for /ready unless told not to."""
        key = (name, instance)
        process = self.processes.get(key)
        if process is not None and process.running:
            raise RuntimeError(f"{name}[{instance}] is already running")
        if process is None:
            process = ServiceProcess(name=name, instance=instance, port=free_port(),
                                     log_path=self.logs_dir / f"{name}-{instance}.log")
            self.processes[key] = process
        process.env = {**self.service_env(name), **(env or {})}
        if instance > 0 and name == "sftp-gateway":
            process.env["SFTP_GATEWAY_SFTP_PORT"] = "0"  # a second gateway must not fight for the SFTP port
        self._launch(process)
        if wait:
            self.wait_ready(name, instance, timeout=timeout)
        return process

    def _launch(self, process: ServiceProcess) -> None:
        log = process.log_path.open("ab")
        try:
            process.popen = subprocess.Popen(  # noqa: S603 - our own command line
                [*calhub_command(), "serve", process.name, "--host", "127.0.0.1", "--port", str(process.port)],
                cwd=self.root, env=process.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    def wait_ready(self, name: str, instance: int = 0, *, timeout: float = 120.0,
                   max_restarts: int = 20) -> dict[str, Any]:
        """Block until the instance answers /ready with 200.

        A process that exits while starting is started again, like an orchestrator's restart policy would (a
        service refuses to start while Kafka or PostgreSQL is unreachable); RuntimeError with the log tail when
        it keeps dying or the time runs out.
        """
        process = self.processes[(name, instance)]
        deadline = time.monotonic() + timeout
        last = ""
        restarts = 0
        while time.monotonic() < deadline:
            if process.popen is not None and process.popen.poll() is not None:
                if restarts >= max_restarts:
                    raise RuntimeError(f"{name}[{instance}] exited with {process.popen.returncode} "
                                       f"{restarts + 1} times:\n{self.log_tail(name, instance, 12)}")
                restarts += 1
                time.sleep(min(0.5 * restarts, 3.0))
                self._launch(process)
                continue
            try:
                response = httpx.get(f"{process.url}/ready", timeout=5.0)
                if response.status_code == 200:
                    body: dict[str, Any] = response.json()
                    return body
                last = response.text[:500]
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.3)
        raise RuntimeError(f"{name}[{instance}] not ready after {timeout:.0f}s (last: {last}):\n"
                           f"{self.log_tail(name, instance, 12)}")

    def kill(self, name: str, instance: int = 0) -> None:
        """kill -9: no shutdown hooks, no flushed buffers, in-flight transactions lost."""
        process = self.processes[(name, instance)]
        if process.popen is not None and process.popen.poll() is None:
            os.killpg(process.popen.pid, signal.SIGKILL)
            process.popen.wait(timeout=30)

    def stop(self, name: str, instance: int = 0, *, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM, then SIGKILL after `timeout`)."""
        process = self.processes.get((name, instance))
        if process is None or process.popen is None or process.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.popen.pid, signal.SIGTERM)
        try:
            process.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGKILL)
            process.popen.wait(timeout=30)

    def restart(self, name: str, instance: int = 0, *, hard: bool = True) -> ServiceProcess:
        """kill -9 (or stop) and start again on the same port; waits for /ready."""
        if hard:
            self.kill(name, instance)
        else:
            self.stop(name, instance)
        return self.start(name, instance)

    def ensure_running(self) -> None:
        """Start any first instance that is down (a failed test must not leave the next one without a service)."""
        for name in SERVICES:
            process = self.processes.get((name, 0))
            if process is None or not process.running:
                self.start(name)

    def shutdown(self) -> None:
        """Stop every process (gracefully, in parallel)."""
        for process in self.processes.values():
            if process.popen is not None and process.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGTERM)
        for process in self.processes.values():
            if process.popen is None:
                continue
            try:
                process.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.popen.pid, signal.SIGKILL)
                process.popen.wait(timeout=10)

    def url(self, name: str, instance: int = 0) -> str:
        return self.processes[(name, instance)].url

    def log_tail(self, name: str, instance: int = 0, lines: int = 40) -> str:
        path = self.processes[(name, instance)].log_path
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def log_files(self) -> list[Path]:
        return sorted(self.logs_dir.glob("*.log"))

    # ---------------------------------------------------------------- clients

    def client(self, name: str, key: str | None = None, *, instance: int = 0,
               headers: Mapping[str, str] | None = None) -> httpx.AsyncClient:
        """An HTTP client of one service instance, authenticated with `key` when given."""
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url(name, instance), headers={**auth, **(headers or {})},
                                 timeout=30.0)

    @contextlib.asynccontextmanager
    async def sftp(self, mcp: str, *, key: asyncssh.SSHKey | None = None, username: str | None = None,
                   ) -> AsyncIterator[asyncssh.SFTPClient]:
        """An SFTP session as the MCP's account on the gateway."""
        async with asyncssh.connect("127.0.0.1", self.sftp_port, username=username or mcp,
                                    client_keys=[key or self.mcp_keys[mcp]], known_hosts=None, agent_path=None,
                                    connect_timeout=20) as conn, conn.start_sftp_client() as sftp:
            yield sftp

    async def upload(self, mcp: str, name: str, content: bytes) -> None:
        """Upload a file to the MCP's /inbound the way careful clients do: temporary name, then rename."""
        async with self.sftp(mcp) as sftp:
            # A file of the same name still in /inbound is being processed: renaming over it would replace it
            # under the gateway's feet, which no careful MCP client does.
            deadline = time.monotonic() + 60
            while await sftp.exists(f"/inbound/{name}"):
                if time.monotonic() > deadline:
                    raise AssertionError(f"/inbound/{name} was not taken by the gateway within 60s")
                await asyncio.sleep(0.2)
            async with sftp.open(f"/inbound/{name}.part", "wb") as handle:
                await handle.write(content)
            await sftp.rename(f"/inbound/{name}.part", f"/inbound/{name}")

    # ---------------------------------------------------------------- infrastructure faults

    def kafka_stop(self) -> None:
        """Stop the broker (data kept). Other sessions' tests see it too: run only under broker_outage."""
        _dev_services("kafka-stop")

    def kafka_start(self) -> None:
        _dev_services("kafka-start")

    def postgres_restart(self) -> None:
        """Restart PostgreSQL (fast shutdown: every connection is cut). Run only under broker_outage."""
        _dev_services("pg-restart")

    # ---------------------------------------------------------------- database (read-only accounting, cleanup)

    def schema(self, name: str) -> str:
        return SCHEMAS[name] + self.schema_suffix

    async def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Run a read-only query (accounting where no API exists yet); `{svc}` names are expanded by caller."""
        engine = create_engine(self.database_url, schema=None)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SET TRANSACTION READ ONLY"))
                rows = (await conn.execute(text(sql), params)).mappings().all()
                return [dict(r) for r in rows]
        finally:
            await engine.dispose()

    async def drop_schemas(self) -> None:
        engine = create_engine(self.database_url, schema=None)
        try:
            async with engine.begin() as conn:
                for name in SERVICES:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema(name)}" CASCADE'))
        finally:
            await engine.dispose()


def _dev_services(command: str) -> None:
    result = subprocess.run([str(DEV_SERVICES), command], capture_output=True, text=True, timeout=300,  # noqa: S603
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"dev-services.sh {command} failed ({result.returncode}): {result.stderr[-2000:]}")


# ------------------------------------------------------------------------------------------------ tenants

@dataclass(frozen=True)
class Credential:
    """An organization's API key as a caller presents it."""

    organization_id: str
    kind: str
    code: str | None
    key: str
    key_id: str


ALL_SCOPES = ("referrals:write", "authorizations:write", "claims:write", "eligibility:write",
              "sftp-gateway:write")


@dataclass
class Tenants:
    """This session's organizations and keys: the hub, two CBOs, the MCPs, and keys that must be refused."""

    hub: Credential
    cbo_a: Credential
    cbo_b: Credential
    mcps: dict[str, Credential]
    under_scoped: Credential  # a hub key with one read scope (eligibility:read)
    under_scoped_other: Credential  # a hub key with another (referrals:read), for the eligibility routes
    revoked: Credential  # revoked before it was ever used (no service can have it cached)
    wrong: str  # well-formed, never issued

    @property
    def mcp_a(self) -> Credential:
        return self.mcps["lacare"]

    @property
    def mcp_b(self) -> Credential:
        return self.mcps["healthnet"]


async def create_tenants(database_url: str, token: str) -> Tenants:
    """Organizations and keys for one session in the shared `auth` schema.

    CBOs are created fresh (unique names); an MCP organization is looked up by its plan code first, because
    the code is unique and other sessions (or a demo) may have registered it already.
    """
    await create_auth_schema(database_url)
    store = AuthStore.from_url(database_url, cache_ttl=0)
    try:
        async def issue(org_id: str, kind: str, code: str | None, scopes: Iterable[str]) -> Credential:
            issued = await store.create_api_key(org_id, scopes=list(scopes))
            return Credential(org_id, kind, code, issued.plaintext, issued.key_id)

        hub_org = await store.create_organization("hub", f"E2E Hub {token}")
        cbo_a = await store.create_organization("cbo", f"E2E CBO A {token}", npi=CBO_A_NPI)
        cbo_b = await store.create_organization("cbo", f"E2E CBO B {token}", npi=CBO_B_NPI)
        mcp_orgs = {}
        for code in MCPS:
            existing = {o.code: o for o in await store.list_organizations() if o.code}
            org = existing.get(code)
            if org is None:
                try:
                    org = await store.create_organization("mcp", f"E2E MCP {code}", code=code)
                except ValueError:  # created by a parallel session meanwhile
                    org = {o.code: o for o in await store.list_organizations() if o.code}[code]
            mcp_orgs[code] = org
        mcp_scopes = ["referrals:read", "authorizations:write", "claims:read", "eligibility:read",
                      "sftp-gateway:read"]
        cbo_scopes = ["referrals:write", "authorizations:read", "claims:write", "eligibility:read",
                      "sftp-gateway:read"]
        tenants = Tenants(
            hub=await issue(hub_org.id, "hub", None, [*ALL_SCOPES, "ops", "admin"]),
            cbo_a=await issue(cbo_a.id, "cbo", None, cbo_scopes),
            cbo_b=await issue(cbo_b.id, "cbo", None, cbo_scopes),
            mcps={code: await issue(org.id, "mcp", code, mcp_scopes) for code, org in mcp_orgs.items()},
            under_scoped=await issue(hub_org.id, "hub", None, ["eligibility:read"]),
            under_scoped_other=await issue(hub_org.id, "hub", None, ["referrals:read"]),
            revoked=await issue(hub_org.id, "hub", None, [*ALL_SCOPES, "ops", "admin"]),
            wrong=f"chk_{uuid.uuid4().hex}_{'0' * 64}",
        )
        await store.revoke_key(tenants.revoked.key_id)
        return tenants
    finally:
        await store.close()


def billing_configuration(tenants: Tenants) -> dict[str, Any]:
    """The claims service's billing setup for this session (synthetic identities and rates): the packaged
    example with both CBOs' billing identities added."""
    import claims  # the packaged example billing file (data shipped with the service)

    example = Path(str(claims.__file__)).resolve().parent / "data" / "billing.example.yaml"
    data: dict[str, Any] = yaml.safe_load(example.read_text())
    data["cbos"] = {
        tenants.cbo_a.organization_id: {"name": "Harbor Community Services", "npi": CBO_A_NPI, "tin": "951234567",
                                        "address": {"line1": "2 Harbor Way", "city": "Long Beach",
                                                    "zip": "908021234"}},
        tenants.cbo_b.organization_id: {"name": "Valley Care Partners", "npi": CBO_B_NPI, "tin": "951234568",
                                        "address": {"line1": "3 Valley Rd", "city": "Fresno", "zip": "937211234"}},
    }
    # The hub keeps 15% of what it collects for each CBO (CALAIM.md, Money: a percentage of collected revenue).
    data["cbo_contracts"] = {org: {"fee_terms": [{"percent": "15", "effective_from": "2024-01-01"}]}
                             for org in (tenants.cbo_a.organization_id, tenants.cbo_b.organization_id)}
    return data


# ------------------------------------------------------------------------------------------------ synthetic data

class Members:
    """Synthetic members for one session: CINs 9xxxxxxxA unique per session, surname Testperson.

    Every value handed out is remembered so the log scan can look for it.
    """

    def __init__(self, token: str) -> None:
        # 8 digits: 9 + 3 from the session token + 4 counted; unlikely to meet another session's members.
        self.stem = f"9{int(token[:6], 16) % 1000:03d}"
        self.count = 0
        self.issued: list[dict[str, Any]] = []

    def next(self, first_name: str | None = None) -> dict[str, Any]:
        """A new member (CIN, names, birth date, address in Los Angeles county)."""
        self.count += 1
        cin = f"{self.stem}{self.count:04d}A"
        member = {"cin": cin, "last_name": "Testperson", "first_name": first_name or f"Ecmone{_letters(self.count)}",
                  "birth_date": date(1960 + self.count % 40, 1 + self.count % 12, 1 + self.count % 27).isoformat(),
                  "sex": "F", "phone": f"(213) 555-{1000 + self.count:04d}",
                  "address": {"line1": f"{100 + self.count} Example St", "city": "Los Angeles", "zip": "90012",
                              "county": "Los Angeles"}}
        self.issued.append(member)
        return member

    def phi_values(self) -> set[str]:
        """Strings that must never appear in a log line: CINs, first names, birth dates in common formats."""
        values: set[str] = set()
        for member in self.issued:
            born = date.fromisoformat(member["birth_date"])
            values |= {member["cin"], member["first_name"], born.isoformat(), born.strftime("%Y%m%d"),
                       born.strftime("%m/%d/%Y"), member["phone"], member["address"]["line1"]}
        return values


def _letters(n: int) -> str:
    # Names without digits (a name with digits would never be mistaken for PHI by the scan either way).
    alphabet = "abcdefghij"
    return "".join(alphabet[int(d)] for d in str(n))


def referral_body(member: Mapping[str, Any], *, mcp_code: str = "lacare", cbo_id: str | None = None,
                  service: Mapping[str, Any] | None = None, urgency: str = "standard") -> dict[str, Any]:
    """A valid referral for the referrals API."""
    body: dict[str, Any] = {
        "member": dict(member), "mcp_code": mcp_code,
        "service": dict(service or {"program": "ecm", "pof_codes": ["1a", "3"]}), "urgency": urgency,
        "referring": {"npi": CBO_A_NPI, "name": "Harbor Community Services",
                      "contact": {"name": "Sam Coordinator", "phone": "213-555-0199"}},
        "notes": "Synthetic end-to-end referral.",
        "consent": {"share_with_mcp": True, "contact_member": True},
    }
    if cbo_id:
        body["cbo_organization_id"] = cbo_id
    return body


def lacare_mif(rows: Sequence[Mapping[str, Any]], period: str) -> tuple[str, bytes]:
    """A Member Information File in L.A. Care's (synthetic) profile layout: pipe-delimited, YYYYMMDD."""
    columns = ["CIN", "LAST_NAME", "FIRST_NAME", "DOB", "GENDER", "ADDRESS", "CITY", "STATE", "ZIP", "PHONE",
               "HOMELESS_FLAG", "POF_CODES", "ECM_STATUS", "AUTH_NUMBER", "AUTH_START", "AUTH_END", "PROVIDER_NPI",
               "ACUITY", "REPORT_PERIOD"]
    lines = ["|".join(columns)]
    for row in rows:
        member = row["member"]
        born = date.fromisoformat(member["birth_date"])
        lines.append("|".join([
            member["cin"], member["last_name"], member["first_name"], born.strftime("%Y%m%d"), member.get("sex", "F"),
            member["address"]["line1"], member["address"]["city"], "CA", member["address"]["zip"],
            re.sub(r"\D", "", member.get("phone", "")), "N", ",".join(row.get("pof_codes", ["1a"])),
            row.get("status", "Authorized"), row["auth_number"], row["start"].strftime("%Y%m%d"),
            row["end"].strftime("%Y%m%d"), row.get("npi", CBO_A_NPI), row.get("acuity", "2"), period]))
    return f"LAC_MIF_{period}.txt", ("\n".join(lines) + "\n").encode()


# ------------------------------------------------------------------------------------------------ accounting

async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await client.get(path, params={k: v for k, v in params.items() if v is not None})
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:500]}"
    return response.json()


async def all_pages(client: httpx.AsyncClient, path: str, *, items: str = "items", limit: int = 200,
                    **params: Any) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated list endpoint."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        body = await get_json(client, path, limit=limit, cursor=cursor, **params)
        if isinstance(body, list):
            return body
        found.extend(body.get(items, []))
        cursor = body.get("next_cursor")
        if not cursor:
            return found
    raise AssertionError(f"{path}: more than 1000 pages")


@dataclass
class Ledger:
    """What the services hold about a set of referrals and members, read through their APIs (and, where no API
    exists, their schemas read-only), plus the ops journal: the evidence for "nothing lost, nothing doubled"."""

    referrals: dict[str, dict[str, Any]]
    authorizations: list[dict[str, Any]]
    encounters: list[dict[str, Any]]
    claims: list[dict[str, Any]]
    journal: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    outbox_backlog: dict[str, int]
    problems: list[str] = field(default_factory=list)

    def authorizations_by_referral(self) -> Counter[str]:
        return Counter(str(a["referral_id"]) for a in self.authorizations if a.get("referral_id"))


class Accountant:
    """Reads every service's state for the accounting after a fault."""

    def __init__(self, cluster: Cluster, tenants: Tenants) -> None:
        self.cluster = cluster
        self.tenants = tenants

    async def outbox_backlogs(self) -> dict[str, int]:
        backlogs: dict[str, int] = {}
        async with httpx.AsyncClient(timeout=10.0) as client:
            for (name, instance), process in self.cluster.processes.items():
                if not process.running:
                    continue
                response = await client.get(f"{process.url}/ready")
                for report in response.json().get("services", []):
                    backlogs[f"{name}[{instance}]"] = int(report.get("outbox_backlog") or 0)
        return backlogs

    async def lag(self) -> dict[tuple[str, str], int]:
        """Consumer lag per (group, topic) as ops measures it from the broker."""
        async with self.cluster.client("ops", self.tenants.hub.key) as ops:
            body = await get_json(ops, "/v1/ops/lag")
        return {(g["group"], g["topic"]): int(g["lag"] or 0) for g in body["groups"]}

    async def settle(self, *, within: float = 90.0) -> None:
        """Wait until every outbox is drained and every consumer group has caught up, twice in a row (a handler
        that just committed may have written new outbox rows)."""
        calm = 0

        async def probe() -> bool:
            nonlocal calm
            quiet = not any((await self.outbox_backlogs()).values()) and not any((await self.lag()).values())
            calm = calm + 1 if quiet else 0
            return calm >= 2

        await eventually(probe, within=within, interval=0.5, what="outboxes drained and consumers caught up")

    async def journal_for(self, correlation_ids: Iterable[str] = (), *, claim_ids: Iterable[str] = (),
                          subjects: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Every journaled event of these flows (the ops timeline by correlation id), of these claims and of
        these subjects; an entry found by two queries is kept once (by journal entry id)."""
        entries: dict[str, dict[str, Any]] = {}
        queries = ([{"correlation_id": c} for c in correlation_ids] + [{"claim_id": c} for c in claim_ids]
                   + [{"subject": s} for s in subjects])
        async with self.cluster.client("ops", self.tenants.hub.key) as ops:
            for query in queries:
                body = await get_json(ops, "/v1/ops/timeline", limit=2000, **query)
                assert not body.get("truncated"), f"timeline {query} truncated"
                for entry in body["items"]:
                    entries[str(entry["id"])] = entry
        return sorted(entries.values(), key=lambda e: (str(e["occurred_at"]), str(e["id"])))

    async def dead_letters(self) -> list[dict[str, Any]]:
        async with self.cluster.client("ops", self.tenants.hub.key) as ops:
            body = await get_json(ops, "/v1/ops/dead-letters", limit=500)
        items: list[dict[str, Any]] = body.get("items", []) if isinstance(body, dict) else body
        return items

    async def read(self, referral_ids: Sequence[str], *, correlation_ids: Sequence[str] = (),
                   claim_ids: Sequence[str] = ()) -> Ledger:
        """Every service's state and the journal of these flows, once outboxes are drained and every consumer
        (the ops journal included) has caught up: a state read before that would race the last events."""
        await self.settle()
        hub = self.tenants.hub.key
        async with self.cluster.client("referrals", hub) as referrals, \
                self.cluster.client("authorizations", hub) as authorizations, \
                self.cluster.client("claims", hub) as claims:
            found = {rid: await get_json(referrals, f"/v1/referrals/{rid}") for rid in referral_ids}
            auths = [a for a in await all_pages(authorizations, "/v1/authorizations")
                     if a.get("referral_id") in found or not referral_ids]
            encounters = await all_pages(claims, "/v1/encounters")
            claim_list = await all_pages(claims, "/v1/claims")
        journal = await self.journal_for(correlation_ids, claim_ids=claim_ids)
        # Dead letters of these flows only (other tests of the session, and the API fuzzing, may leave theirs).
        related = ({str(e["event_id"]) for e in journal} | set(referral_ids) | set(claim_ids)
                   | {str(a["id"]) for a in auths})
        dead = [d for d in await self.dead_letters()
                if str(d.get("event_id")) in related or str(d.get("subject")) in related]
        return Ledger(referrals=found, authorizations=auths, encounters=encounters, claims=claim_list,
                      journal=journal, dead_letters=dead, outbox_backlog=await self.outbox_backlogs())


def assert_no_duplicate_events(journal: Sequence[Mapping[str, Any]],
                               expected: Mapping[tuple[str, str], int] | None = None) -> None:
    """Every journaled event id appears once, and no (type, subject) fact was published twice under two ids
    where the fact is one-shot by nature; `expected` names facts a scenario repeats on purpose, with how many
    times (an approval changed as modified is published again: `authorization.approved` twice)."""
    ids = Counter(str(e.get("event_id") or e.get("id")) for e in journal)
    doubled = {k: v for k, v in ids.items() if v > 1}
    assert not doubled, f"events journaled more than once: {doubled}"
    one_shot = {"referral.received", "referral.routed", "authorization.requested", "authorization.approved",
                "encounter.recorded", "claim.created", "claim.submitted", "claim_batch.created"}
    facts = Counter((e.get("event_type") or e.get("type"), e.get("subject")) for e in journal
                    if (e.get("event_type") or e.get("type")) in one_shot)
    allowed = dict(expected or {})
    repeated = {f"{t}:{s}": n for (t, s), n in facts.items() if n > allowed.get((str(t), str(s)), 1)}
    assert not repeated, f"one-shot facts published more than once: {repeated}"
    missing = {f"{t}:{s}": n for (t, s), n in allowed.items() if facts[(t, s)] != n}
    assert not missing, f"facts not published the expected number of times: {missing}"


def scan_logs_for(paths: Iterable[Path], values: Iterable[str]) -> dict[str, list[str]]:
    """Which of `values` appear in which log files (value -> file names); empty when the logs are clean."""
    needles = sorted({v for v in values if v and len(v) >= 4})
    hits: dict[str, list[str]] = {}
    for path in paths:
        content = path.read_text(errors="replace")
        for needle in needles:
            if needle in content:
                hits.setdefault(needle, []).append(path.name)
    return hits


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON log records of a service log (non-JSON lines, e.g. a traceback on stderr, are skipped)."""
    records = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                records.append(value)
    return records
