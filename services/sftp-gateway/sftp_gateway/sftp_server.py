"""The gateway's SFTP server (asyncssh): one jailed account per MCP, public-key auth, uploads into the pipeline.

Each account sees `/inbound` and `/outbound` only. A path that climbs above the account root (`..`), a
symlink or hard link, or anything resolving outside the root is refused, not clamped. Uploads go to inbound/;
an upload is complete when the client closes the file (explicitly, not by dropping the connection) or renames
it away from a temporary name (`.tmp`, `.part`, `.filepart`, a leading dot). A connection that drops mid-
upload leaves nothing behind: the partial file is deleted and the MCP sends it again. An upload under a final
name is marked as in progress (outside the jail, before the file is created) until it completes, so an upload
cut off by the gateway itself dying (kill -9, power) is recognized by the next start and quarantined as
`incomplete_upload`, never processed. A processed upload leaves inbound/ only if it still holds the bytes that
were processed; one completed again under a name being processed is processed after that run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import asyncssh

from sftp_gateway.domain.profile import is_temporary_name
from sftp_gateway.jail import INBOUND, OUTBOUND, Jail
from sftp_gateway.ports import GatewayPorts
from sftp_gateway.repository import SftpGatewayUnitOfWork
from sftp_gateway.service import Arrival, ingest, quarantine_incomplete
from shared.runtime import Background, ServiceRuntime

log = logging.getLogger("calhub.sftp_gateway.sftp")

_WRITE_FLAGS = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC | asyncssh.FXF_APPEND
SWEEP_INTERVAL = 30.0  # seconds between looks for uploads that were complete but not processed (a crash)


def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
    """The server's host key; generated (ed25519, mode 0600) on first start when the file is absent."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519", comment="calhub-sftp-gateway")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.export_private_key())
    log.info("generated the SFTP host key")
    return key


@dataclass
class _Upload:
    """An open file of a session."""

    account: str
    virtual: tuple[str, ...]
    local: Path
    writing: bool
    too_large: bool = False
    marked: bool = False  # an upload-in-progress marker was written for it


class _GatewaySSHServer(asyncssh.SSHServer):
    """Authentication: the account's authorized keys from its profile, nothing else."""

    def __init__(self, part: SftpServerPart) -> None:
        self._part = part
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        profile = self._part.ports.profiles.for_account(username)
        assert self._conn is not None
        keys = "\n".join(profile.account.authorized_keys) if profile else ""
        # An unknown account gets an empty key list: authentication runs and fails like a wrong key, so the
        # answer does not reveal which account names exist.
        self._conn.set_authorized_keys(asyncssh.import_authorized_keys(keys) if keys else None)
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False


class JailedSFTPServer(asyncssh.SFTPServer):
    """One SFTP session of one MCP account, confined to its folder."""

    def __init__(self, chan: asyncssh.SSHServerChannel[Any], part: SftpServerPart) -> None:
        self._part = part
        self._account = str(chan.get_extra_info("username"))
        profile = part.ports.profiles.for_account(self._account)
        if profile is None:
            raise asyncssh.SFTPPermissionDenied("no such account")
        self._profile = profile
        self._root = part.ports.jail.home(self._account)
        super().__init__(chan, chroot=str(self._root).encode())
        self._root_text = os.path.realpath(self._root)
        self._open: dict[int, _Upload] = {}

    # ------------------------------------------------------------------------------------------ paths

    def _virtual(self, path: bytes) -> tuple[str, ...]:
        try:
            text = path.decode("utf-8")
        except UnicodeDecodeError:
            raise asyncssh.SFTPInvalidFilename("file names are UTF-8") from None
        parts: list[str] = []
        above_root = False
        for part in text.replace("\\", "/").split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                else:
                    above_root = True
                continue
            if above_root:
                # Naming anything above the account root is an escape attempt: refused, not clamped.
                raise asyncssh.SFTPPermissionDenied("the path leaves the account folder")
            parts.append(part)
        # "/.." itself is the root, as in a real chroot (clients list "/" with its ".." entry).
        return tuple(parts)

    def map_path(self, path: bytes) -> bytes:
        virtual = self._virtual(path)
        local = os.path.join(self._root_text, *virtual)
        # A symlink anywhere on the way (put there by anything but this server) must not lead out of the jail.
        real = os.path.realpath(local)
        if real != self._root_text and not real.startswith(self._root_text + os.sep):
            raise asyncssh.SFTPPermissionDenied("the path leaves the account folder")
        if os.path.islink(local):
            raise asyncssh.SFTPPermissionDenied("symbolic links are not served")
        return local.encode()

    def _require(self, virtual: tuple[str, ...], folder: str, action: str) -> None:
        if len(virtual) != 2 or virtual[0] != folder:
            raise asyncssh.SFTPPermissionDenied(f"{action} only directly in /{folder}")

    # ------------------------------------------------------------------------------------------ files

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        virtual = self._virtual(path)
        writing = bool(pflags & _WRITE_FLAGS)
        if writing:
            self._require(virtual, INBOUND, "uploads are allowed")
            limits = self._profile.limits
            if self._part.ports.jail.usage(self._account) >= limits.max_account_bytes:
                raise asyncssh.SFTPQuotaExceeded("the account's storage limit is reached")
        elif not virtual or virtual[0] not in (INBOUND, OUTBOUND):
            raise asyncssh.SFTPNoSuchFile("no such file")
        local = Path(self.map_path(path).decode())
        # A final name is marked as being written before the file exists: if the gateway dies mid-upload, the
        # next start knows the file is partial. Temporary names are never processed, so they need no marker.
        marked = writing and not is_temporary_name(virtual[-1])
        if marked:
            self._part.jail.mark_upload(self._account, virtual[-1], self._part.token)
        try:
            file_obj = super().open(path, pflags, attrs)
        except BaseException:
            if marked:
                self._part.jail.clear_upload(self._account, virtual[-1], self._part.token)
            raise
        self._open[id(file_obj)] = _Upload(self._account, virtual, local, writing, marked=marked)
        if writing:
            self._part.writing.add(local)
        return file_obj

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        upload = self._open.get(id(file_obj))
        if upload is not None and offset + len(data) > self._profile.limits.max_file_bytes:
            upload.too_large = True
            raise asyncssh.SFTPQuotaExceeded("the file is larger than this account's file limit")
        result = super().write(file_obj, offset, data)
        return int(result) if isinstance(result, int) else len(data)

    def close(self, file_obj: object) -> None:
        super().close(file_obj)
        upload = self._open.pop(id(file_obj), None)
        if upload is None or not upload.writing:
            return
        self._part.writing.discard(upload.local)
        if self.channel.is_closing() or upload.too_large:
            # Closed by a dropped connection (or refused for size): the bytes are not a whole file.
            with contextlib.suppress(FileNotFoundError):
                upload.local.unlink()
            self._unmark(upload)
            log.warning("incomplete upload discarded", extra={"mcp_code": self._profile.mcp_code,
                                                              "reason": "too_large" if upload.too_large
                                                              else "connection_lost"})
            return
        self._unmark(upload)
        if not is_temporary_name(upload.virtual[-1]):
            self._part.accept(self._profile.mcp_code, upload.local)

    def _unmark(self, upload: _Upload) -> None:
        # Not while another session of this process still writes the same name (it keeps the marker).
        if upload.marked and upload.local not in self._part.writing:
            self._part.jail.clear_upload(self._account, upload.virtual[-1], self._part.token)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._rename(oldpath, newpath, replace=False)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._rename(oldpath, newpath, replace=True)

    def _rename(self, oldpath: bytes, newpath: bytes, *, replace: bool) -> None:
        old, new = self._virtual(oldpath), self._virtual(newpath)
        self._require(old, INBOUND, "renames are allowed")
        self._require(new, INBOUND, "renames are allowed")
        source, target = Path(self.map_path(oldpath).decode()), Path(self.map_path(newpath).decode())
        if not replace and target.exists():
            raise asyncssh.SFTPFileAlreadyExists("the target name exists")
        os.replace(source, target)
        # A file still being written keeps its in-progress marker under its new name.
        self._part.jail.move_upload(self._account, old[-1], new[-1])
        if source in self._part.writing:
            self._part.writing.discard(source)
            self._part.writing.add(target)
            for upload in self._open.values():
                if upload.local == source:
                    upload.local, upload.virtual = target, new
        if is_temporary_name(old[-1]) and not is_temporary_name(new[-1]):
            self._part.accept(self._profile.mcp_code, target)

    def remove(self, path: bytes) -> None:
        virtual = self._virtual(path)
        if len(virtual) != 2 or virtual[0] not in (INBOUND, OUTBOUND):
            raise asyncssh.SFTPPermissionDenied("only files in /inbound or /outbound can be removed")
        super().remove(path)

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPPermissionDenied("folders cannot be created")

    def rmdir(self, path: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("folders cannot be removed")

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        self._virtual(path)  # permissions and owners stay the gateway's; times are not kept either

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        return None

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("symbolic links are not allowed")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed")

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPPermissionDenied("symbolic links are not served")


def _sha256_of(local: Path) -> str | None:
    """The SHA-256 of a file's bytes now (None when it is gone)."""
    try:
        with local.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None


class SftpServerPart(Background):
    """The SFTP server as a background part of the service, and the hand-off of complete uploads."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.uow = cast(Callable[[], SftpGatewayUnitOfWork], runtime.uow)
        self.ports: GatewayPorts = runtime.ports["gateway"]
        self.settings = self.ports.settings
        self._server: asyncssh.SSHAcceptor | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: set[Path] = set()
        # Uploads that completed again while their name was in flight: processed once the first run is done.
        self._again: set[Path] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._limit = asyncio.Semaphore(self.settings.max_concurrent_ingests)
        self.port: int | None = None
        self.processed = 0
        self.writing: set[Path] = set()
        # This process's mark on the uploads it is writing; a marker with another token is a dead process's.
        self.token = uuid.uuid4().hex
        self.incomplete = 0

    @property
    def jail(self) -> Jail:
        return self.ports.jail

    def host_key_path(self) -> Path:
        return self.settings.host_key_path or self.ports.data_dir / "sftp-gateway" / "ssh_host_ed25519_key"

    async def start(self) -> None:
        """Listen, then pick up complete uploads a previous run did not process."""
        if not self.settings.sftp_enabled:
            return
        for profile in self.ports.profiles.all():
            self.jail.home(profile.account.username)
        key = load_or_create_host_key(self.host_key_path())
        self._server = await asyncssh.create_server(
            lambda: _GatewaySSHServer(self), self.settings.sftp_host, self.settings.sftp_port,
            server_host_keys=[key], sftp_factory=lambda chan: JailedSFTPServer(chan, self), allow_scp=False,
            agent_forwarding=False, x11_forwarding=False, allow_pty=False, line_editor=False,
            process_factory=None, session_factory=None)
        sockets = self._server.sockets
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.sftp_port
        log.info("SFTP server listening", extra={"service": "sftp-gateway", "size": self.port})
        self.sweep()
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="sftp-inbound-sweep")

    async def stop(self) -> None:
        """Stop listening and let uploads being processed finish."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def ready(self) -> dict[str, Any]:
        """Readiness: listening port, uploads being processed."""
        if self.settings.sftp_enabled and self._server is None:
            raise RuntimeError("SFTP server not listening")
        return {"sftp": {"port": self.port, "in_flight": len(self._in_flight)}}

    def accept(self, mcp_code: str, local: Path) -> None:
        """A complete upload: process it in the background. One that completes while its name is still being
        processed (the MCP sent a correction under the same name) is processed again after that run."""
        if local in self._in_flight:
            self._again.add(local)
            return
        self._in_flight.add(local)
        task = asyncio.get_running_loop().create_task(self._process(mcp_code, local))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _replaced(self, local: Path) -> bool:
        # Being written again, or written again since this run began: the bytes in hand are not the last word.
        return local in self.writing or local in self._again

    def _done(self, mcp_code: str, local: Path) -> None:
        self._in_flight.discard(local)
        if local in self._again:
            self._again.discard(local)
            self.accept(mcp_code, local)

    async def _remove_if_unchanged(self, local: Path, content: bytes) -> None:
        """Take a handled upload out of inbound/ unless the MCP replaced it meanwhile (same size or not)."""
        if self._replaced(local):
            return
        handled, current = await asyncio.to_thread(
            lambda: (hashlib.sha256(content).hexdigest(), _sha256_of(local)))
        if current == handled:
            self._unlink_unless_replaced(local)

    def _unlink_unless_replaced(self, local: Path) -> None:
        # Checked again on the event loop, where sessions open and close files, with nothing awaited before unlink.
        if not self._replaced(local):
            with contextlib.suppress(FileNotFoundError):
                local.unlink()

    async def _process(self, mcp_code: str, local: Path) -> None:
        try:
            async with self._limit:
                if self._replaced(local):
                    return  # its next close announces it again
                try:
                    content = await asyncio.to_thread(local.read_bytes)
                except FileNotFoundError:
                    return  # removed by the MCP before we got to it
                if self._replaced(local):
                    return  # rewritten while it was read: the bytes may be a mix
                outcome = await ingest(self.uow, self.ports, Arrival(mcp_code, local.name, content, "sftp"))
                # Archived and recorded: the upload leaves inbound/ (the MCP sees it was taken).
                await self._remove_if_unchanged(local, content)
                self.processed += 1
                log.info("upload processed", extra={"file_id": outcome.file_id, "mcp_code": mcp_code,
                                                    "status": outcome.status})
        except Exception as exc:  # noqa: BLE001 - the file stays in inbound/; the sweep tries again
            log.error("upload processing failed; will retry", extra={"mcp_code": mcp_code,
                                                                     "error_type": type(exc).__name__})
        finally:
            self._done(mcp_code, local)

    def _quarantine_incomplete(self, mcp_code: str, account: str, local: Path, owner: str) -> None:
        if local in self._in_flight:
            return
        self._in_flight.add(local)
        task = asyncio.get_running_loop().create_task(self._set_aside(mcp_code, account, local, owner))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set_aside(self, mcp_code: str, account: str, local: Path, owner: str) -> None:
        try:
            async with self._limit:
                try:
                    content = await asyncio.to_thread(local.read_bytes)
                except FileNotFoundError:
                    self.jail.clear_upload(account, local.name, owner)
                    return
                outcome = await quarantine_incomplete(self.uow, self.ports,
                                                      Arrival(mcp_code, local.name, content, "sftp"))
                # Archived and recorded: the partial bytes leave inbound/, the MCP finds the error report.
                await self._remove_if_unchanged(local, content)
                self.jail.clear_upload(account, local.name, owner)
                self.incomplete += 1
                log.warning("incomplete upload quarantined", extra={"file_id": outcome.file_id,
                                                                    "mcp_code": mcp_code,
                                                                    "reason": "incomplete_upload"})
        except Exception as exc:  # noqa: BLE001 - the file and its marker stay; the sweep tries again
            log.error("incomplete upload not set aside; will retry", extra={"mcp_code": mcp_code,
                                                                            "error_type": type(exc).__name__})
        finally:
            self._done(mcp_code, local)  # a whole re-upload that completed meanwhile is processed now

    def sweep(self) -> int:
        """Queue every complete upload still in an inbound/ folder (after a crash or a failed attempt), and
        set aside every upload a dead gateway process was writing (partial: never processed)."""
        queued = 0
        for profile in self.ports.profiles.all():
            account = profile.account.username
            folder = self.jail.root / account / INBOUND
            if not folder.is_dir():
                continue
            stale: dict[Path, str] = {}
            for name in self.jail.stale_uploads(account, self.token):
                path = folder / name
                owner = self.jail.upload_owner(account, name)
                if owner is None or self._open_for_write(path) or path in self._in_flight:
                    continue
                stale[path] = owner
                self._quarantine_incomplete(profile.mcp_code, account, path, owner)
                queued += 1
            for entry in os.scandir(folder):
                path = Path(entry.path)
                if entry.is_file(follow_symlinks=False) and not is_temporary_name(entry.name) \
                        and path not in stale and not self._open_for_write(path) and path not in self._in_flight \
                        and self.jail.upload_owner(account, entry.name) is None:
                    self.accept(profile.mcp_code, path)
                    queued += 1
        return queued

    def _open_for_write(self, path: Path) -> bool:
        # A file some session is still writing is not complete; the sessions register what they write.
        return path in self.writing

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.sweep()

    async def drain(self) -> None:
        """Wait until every accepted upload is processed (tests, benchmark)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

