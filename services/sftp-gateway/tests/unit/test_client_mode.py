"""Client mode against a second, local asyncssh SFTP server standing in for an MCP's own server: poll, push,
host-key pinning, retries, heartbeat and alerts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml
from gateway_testing import Gateway, hn_mif, hn_mif_row, make_accounts, running_gateway, wait_for, x12

from shared.bus.message import encode
from shared.contracts.claims import ClaimBatchCreated
from shared.envelope import new_event

REMOTE_TOPIC = "sftp-gateway.remote.v1"


class McpServer:
    """The MCP's SFTP server: one account `goldenstatehub`, chrooted, key auth."""

    def __init__(self, root: Path, client_key: asyncssh.SSHKey) -> None:
        self.root = root
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = client_key
        self.acceptor: asyncssh.SSHAcceptor | None = None
        self.port = 0
        for folder in ("outbound", "inbound"):
            (root / folder).mkdir(parents=True, exist_ok=True)

    async def start(self) -> None:
        client_public = self.client_key.export_public_key().decode()
        root = str(self.root).encode()

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

        self.acceptor = await asyncssh.create_server(
            Server, "127.0.0.1", self.port, server_host_keys=[self.host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(client_public),
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root))
        self.port = self.acceptor.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.acceptor is not None:
            self.acceptor.close()
            await self.acceptor.wait_closed()
            self.acceptor = None


@pytest.fixture
async def mcp_server(tmp_path: Path) -> AsyncIterator[tuple[McpServer, asyncssh.SSHKey]]:
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    server = McpServer(tmp_path / "mcp-server", client_key)
    await server.start()
    yield server, client_key
    await server.stop()


def remote_profile(server: McpServer, host_key: str | None = None) -> Any:
    def change(mcp: str, data: dict[str, Any]) -> None:
        if mcp == "healthnet":
            data["remote"] = {"host": "127.0.0.1", "port": server.port, "username": "goldenstatehub",
                              "client_key": "healthnet_client", "host_key": host_key or
                              server.host_key.export_public_key().decode().strip(),
                              "inbound_dir": "/outbound", "outbound_dir": "/inbound", "poll_interval_seconds": 3600,
                              "retries": 2, "retry_backoff_seconds": 0, "connect_timeout_seconds": 5,
                              "settle_seconds": 0.5}
    return change


async def test_poll_push_pinning_heartbeat_and_alerts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      mcp_server: tuple[McpServer, asyncssh.SSHKey]) -> None:
    server, client_key = mcp_server
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "healthnet_client").write_bytes(client_key.export_private_key())
    (keys / "healthnet_client").chmod(0o600)
    accounts = make_accounts(tmp_path / "client-keys")
    async with running_gateway(tmp_path, monkeypatch, change=remote_profile(server), accounts=accounts,
                               env={"SFTP_GATEWAY_KEYS_DIR": str(keys)}) as gateway:
        # The MCP leaves a MIF on its own server; the gateway fetches it, processes it and deletes it there.
        (server.root / "outbound" / "HN_ECM_MIF_202610.csv").write_bytes(hn_mif(2))
        (server.root / "outbound" / "HN_ECM_MIF_202611.csv.part").write_bytes(b"still uploading")
        result = await gateway.remote.poll("healthnet")
        assert result.ok and len(result.fetched) == 1, result
        await gateway.settle()
        assert len(gateway.events("sftp-gateway.member_information.v1")) == 2
        assert sorted(p.name for p in (server.root / "outbound").iterdir()) == ["HN_ECM_MIF_202611.csv.part"]
        [file] = await gateway.files(direction="inbound")
        assert file["source"] == "remote"

        # Outbound files are pushed to the MCP's inbound folder under their final name only.
        batch_file = gateway.ports.files.put(x12("HC", "005010X222A1", [["BHT", "0019", "00", "B1"]]))
        await gateway.harness.bus.publish([encode(new_event(ClaimBatchCreated(
            batch_id="batch_7", mcp_code="healthnet", claims=1, total_amount=Decimal("350.00"), file=batch_file,
            created_at=datetime.now(UTC)), subject="batch_7", source="test"))])
        await wait_for(lambda: _pending_push(gateway))
        pushed = await gateway.remote.poll("healthnet")
        assert pushed.ok and len(pushed.pushed) == 1
        [sent] = list((server.root / "inbound").iterdir())
        assert sent.name.endswith("_batch_7.x12") and sent.read_bytes() == gateway.ports.files.get(batch_file)
        outbound = [f for f in await gateway.files(direction="outbound") if f["kind"] == "837p"]
        assert outbound[0]["push_status"] == "pushed"

        heartbeat = (await gateway.client.get("/v1/remotes", headers=gateway.headers())).json()
        assert heartbeat[0]["healthy"] and heartbeat[0]["files_fetched"] == 1 and heartbeat[0]["files_pushed"] == 1

        # A server presenting a different host key is refused (pinning), with retries, then alerted.
        stranger = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
        profile_path = gateway.ports.profiles.folder / "healthnet.yaml"
        good = profile_path.read_text()
        data = yaml.safe_load(good)
        data["remote"]["host_key"] = stranger
        profile_path.write_text(yaml.safe_dump(data))
        assert (await gateway.client.post("/v1/profiles/reload", headers=gateway.headers())).status_code == 200
        (server.root / "outbound" / "HN_ECM_MIF_202612.csv").write_bytes(hn_mif(3))
        failed = await gateway.remote.poll("healthnet")
        assert not failed.ok and failed.attempts == 2 and failed.error_type == "HostKeyNotVerifiable"
        assert (server.root / "outbound" / "HN_ECM_MIF_202612.csv").exists()  # nothing fetched from it
        await gateway.settle()
        [alert] = gateway.events(REMOTE_TOPIC, "remote.poll_failed")
        assert alert.data.consecutive_failures == 1 and alert.data.last_success_at is not None
        heartbeat = (await gateway.client.get("/v1/remotes", headers=gateway.headers())).json()
        assert not heartbeat[0]["healthy"] and heartbeat[0]["last_error_type"] == "HostKeyNotVerifiable"

        # The server is down: another failure; then back with the right key: recovered.
        profile_path.write_text(good)
        await gateway.client.post("/v1/profiles/reload", headers=gateway.headers())
        await server.stop()
        down = await gateway.remote.poll("healthnet")
        assert not down.ok and down.error_type in ("ConnectionRefusedError", "OSError")
        await server.start()
        polled = await gateway.client.post("/v1/remotes/healthnet/poll", headers=gateway.headers())
        assert polled.json()["ok"] and len(polled.json()["fetched"]) == 1
        await gateway.settle()
        [recovered] = gateway.events(REMOTE_TOPIC, "remote.poll_recovered")
        assert recovered.data.failures == 2


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


async def test_a_file_the_mcp_is_still_writing_is_left_for_the_next_poll(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mcp_server: tuple[McpServer, asyncssh.SSHKey]) -> None:
    server, client_key = mcp_server
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "healthnet_client").write_bytes(client_key.export_private_key())
    (keys / "healthnet_client").chmod(0o600)
    async with running_gateway(tmp_path, monkeypatch, change=remote_profile(server),
                               env={"SFTP_GATEWAY_KEYS_DIR": str(keys)}) as gateway:
        await wait_for(lambda: _polled_by_the_loop(gateway))  # its first poll, at start, is out of the way
        target = server.root / "outbound" / "HN_ECM_MIF_202610.csv"
        target.write_bytes(hn_mif(0))  # the MCP writes straight to the final name, a row at a time
        writing = asyncio.Event()
        writing.set()

        async def write_rows() -> int:
            written = 0
            while writing.is_set():
                written += 1
                await asyncio.to_thread(_append, target, hn_mif_row(written).encode() + b"\r\n")
                await asyncio.sleep(0.05)
            return written

        writer = asyncio.create_task(write_rows())
        while_writing = await gateway.remote.poll("healthnet")
        writing.clear()
        rows = await writer
        assert while_writing.ok and while_writing.fetched == []
        assert target.exists()
        done = await gateway.remote.poll("healthnet")
        assert done.ok and len(done.fetched) == 1
        await gateway.settle()
        assert len(gateway.events("sftp-gateway.member_information.v1")) == rows
        [file] = await gateway.files(direction="inbound")
        assert (file["status"], file["rows_accepted"]) == ("processed", rows)


async def _polled_by_the_loop(gateway: Gateway) -> bool:
    response = await gateway.client.get("/v1/remotes", headers=gateway.headers())
    return response.json()[0]["last_success_at"] is not None


async def _pending_push(gateway: Gateway) -> bool:
    await gateway.settle()
    async with gateway.runtime.uow() as uow:
        return len(await uow.files.pending_pushes("healthnet")) == 1
