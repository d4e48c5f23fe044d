"""Client mode: poll each MCP's own SFTP server for its files and push ours there, with a pinned host key.

One loop for every MCP whose profile has `remote`: every `poll_interval_seconds` it fetches new files from
the MCP's folder into the inbound pipeline and pushes outbound files still pending, retrying a failed
session `retries` times with backoff. The heartbeat (last success, failures in a row) is a table row; a
failed poll raises remote.poll_failed, the first good one after that remote.poll_recovered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import asyncssh

from sftp_gateway.domain.profile import Profile, Remote, is_temporary_name
from sftp_gateway.ports import GatewayPorts
from sftp_gateway.repository import SftpGatewayUnitOfWork, aware
from sftp_gateway.service import SOURCE, Arrival, ingest
from shared.contracts.gateway import RemotePollFailed, RemotePollRecovered
from shared.envelope import new_event
from shared.filestore import SCHEME
from shared.runtime import Background, ServiceRuntime

log = logging.getLogger("calhub.sftp_gateway.remote")


@dataclass
class PollResult:
    """One poll of one MCP: files fetched and pushed, or the error type that stopped it."""

    mcp_code: str
    ok: bool
    fetched: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    attempts: int = 0
    error_type: str | None = None


class RemoteExchange(Background):
    """Polls and pushes for every MCP in client mode."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.uow = cast(Callable[[], SftpGatewayUnitOfWork], runtime.uow)
        self.ports: GatewayPorts = runtime.ports["gateway"]
        self._task: asyncio.Task[None] | None = None
        self._last_poll: dict[str, float] = {}
        self._seen: dict[str, set[tuple[str, int, int]]] = {}  # remote files already fetched (kept remotely)
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        """Start the polling loop (when client mode is on)."""
        if self.ports.settings.client_mode:
            self._task = asyncio.create_task(self._loop(), name="sftp-client-mode")

    async def stop(self) -> None:
        """Stop polling; a poll in progress is cancelled and runs again next time."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def ready(self) -> dict[str, Any]:
        """Client-mode MCPs (their health is on GET /v1/remotes)."""
        return {"client_mode": [p.mcp_code for p in self.ports.profiles.all() if p.remote is not None]}

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            for profile in self.ports.profiles.all():
                remote = profile.remote
                if remote is None:
                    continue
                last = self._last_poll.get(profile.mcp_code)
                if last is None or loop.time() - last >= remote.poll_interval_seconds:
                    self._last_poll[profile.mcp_code] = loop.time()
                    try:
                        await self.poll(profile.mcp_code)
                    except Exception as exc:  # noqa: BLE001 - recorded by poll(); the loop must go on
                        log.error("client-mode poll crashed", extra={"mcp_code": profile.mcp_code,
                                                                     "error_type": type(exc).__name__})
            await asyncio.sleep(1.0)

    def _key_path(self, remote: Remote) -> Path:
        path = Path(remote.client_key)
        return path if path.is_absolute() else self.ports.keys_dir() / path

    async def _connect(self, remote: Remote) -> asyncssh.SSHClientConnection:
        # Pinned: the profile's host key is the only one trusted; no known_hosts learning, no CA.
        trusted = asyncssh.import_public_key(remote.host_key)
        return await asyncio.wait_for(asyncssh.connect(
            remote.host, remote.port, username=remote.username, client_keys=[str(self._key_path(remote))],
            known_hosts=([trusted], [], []), agent_path=None, preferred_auth="publickey",
            connect_timeout=remote.connect_timeout_seconds), remote.connect_timeout_seconds + 5)

    async def poll(self, mcp_code: str) -> PollResult:
        """Fetch and push for one MCP now, with retries; records the heartbeat and alert events."""
        profile = self.ports.profiles.get(mcp_code)
        if profile is None or profile.remote is None:
            return PollResult(mcp_code, ok=False, error_type="NotInClientMode")
        lock = self._locks.setdefault(mcp_code, asyncio.Lock())
        async with lock:
            return await self._poll(profile, profile.remote)

    async def _poll(self, profile: Profile, remote: Remote) -> PollResult:
        result = PollResult(profile.mcp_code, ok=False)
        started = self.ports.clock.now()
        for attempt in range(1, remote.retries + 1):
            result.attempts = attempt
            try:
                async with await self._connect(remote) as conn, conn.start_sftp_client() as sftp:
                    await self._fetch(profile, remote, sftp, result)
                    await self._push(profile, remote, sftp, result)
                result.ok, result.error_type = True, None
                break
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                result.error_type = type(exc).__name__
                log.warning("client-mode session failed", extra={"mcp_code": profile.mcp_code,
                                                                 "attempt": attempt, "error_type": result.error_type})
                if attempt < remote.retries:
                    await asyncio.sleep(remote.retry_backoff_seconds * 2 ** (attempt - 1))
        await self._record(profile.mcp_code, result, started)
        return result

    async def _listing(self, remote: Remote, sftp: asyncssh.SFTPClient,
                       seen: set[tuple[str, int, int]]) -> dict[str, tuple[str, int, int]]:
        """Regular files under final names in the MCP's folder not fetched before: name -> (name, size, mtime)."""
        listed = {}
        for entry in await sftp.readdir(remote.inbound_dir):
            name = str(entry.filename)
            if name in (".", "..") or is_temporary_name(name) or entry.attrs.type != asyncssh.FILEXFER_TYPE_REGULAR:
                continue
            marker = (name, entry.attrs.size or 0, entry.attrs.mtime or 0)
            if marker not in seen:
                listed[name] = marker
        return listed

    async def _fetch(self, profile: Profile, remote: Remote, sftp: asyncssh.SFTPClient, result: PollResult) -> None:
        seen = self._seen.setdefault(profile.mcp_code, set())
        listed = await self._listing(remote, sftp, seen)
        if not listed:
            return
        # The MCP may write straight to the final name on its own server: a file still growing is left for the
        # next poll; only files whose size and time held over settle_seconds are taken.
        await asyncio.sleep(remote.settle_seconds)
        settled = await self._listing(remote, sftp, seen)
        for name, marker in listed.items():
            if settled.get(name) != marker:
                continue
            path = posixpath.join(remote.inbound_dir, name)
            async with sftp.open(path, "rb") as handle:
                data = await handle.read()
            content = data if isinstance(data, bytes) else data.encode()
            if len(content) != marker[1]:
                continue  # it changed while it was read: next poll
            outcome = await ingest(self.uow, self.ports, Arrival(profile.mcp_code, name, content, "remote"))
            result.fetched.append(outcome.file_id)
            if remote.delete_after_fetch:
                now = await sftp.stat(path)
                if (now.size or 0, now.mtime or 0) == marker[1:]:  # not if the MCP replaced it meanwhile
                    await sftp.remove(path)
            else:
                seen.add(marker)

    async def _push(self, profile: Profile, remote: Remote, sftp: asyncssh.SFTPClient, result: PollResult) -> None:
        async with self.uow() as uow:
            pending = await uow.files.pending_pushes(profile.mcp_code)
        for row in pending:
            content = await asyncio.to_thread(self.ports.files.get, SCHEME + row.sha256)
            target = posixpath.join(remote.outbound_dir, row.name)
            temporary = posixpath.join(remote.outbound_dir, f".{row.name}.part")
            async with sftp.open(temporary, "wb") as handle:
                await handle.write(content)
            # Atomic on the MCP's side too: the final name appears only when the bytes are all there.
            try:
                await sftp.posix_rename(temporary, target)
            except asyncssh.SFTPOpUnsupported:
                with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                    await sftp.remove(target)
                await sftp.rename(temporary, target)
            async with self.uow() as uow:
                await uow.files.update(row.id, push_status="pushed", pushed_at=self.ports.clock.now(),
                                       push_attempts=row.push_attempts + 1)
                await uow.commit()
            result.pushed.append(row.id)

    async def _record(self, mcp_code: str, result: PollResult, started: datetime) -> None:
        now = self.ports.clock.now()
        async with self.uow() as uow:
            current = await uow.remotes.get(mcp_code)
            failures = int(current.consecutive_failures) if current is not None else 0
            fetched = int(current.files_fetched) if current is not None else 0
            pushed = int(current.files_pushed) if current is not None else 0
            if result.ok:
                await uow.remotes.save(mcp_code, last_attempt_at=started, last_success_at=now, consecutive_failures=0,
                                       last_error_type=None, files_fetched=fetched + len(result.fetched),
                                       files_pushed=pushed + len(result.pushed))
                if failures:
                    uow.record(new_event(RemotePollRecovered(mcp_code=mcp_code, recovered_at=now, failures=failures),
                                         subject=mcp_code, source=SOURCE))
            else:
                await uow.remotes.save(mcp_code, last_attempt_at=started, consecutive_failures=failures + 1,
                                       last_error_type=result.error_type)
                uow.record(new_event(RemotePollFailed(
                    mcp_code=mcp_code, failed_at=now, consecutive_failures=failures + 1,
                    error_type=result.error_type or "unknown",
                    last_success_at=aware(current.last_success_at) if current is not None else None),
                    subject=mcp_code, source=SOURCE))
            await uow.commit()
