"""The MCP accounts' folders on disk: `<root>/<account>/inbound` and `outbound`, and atomic outbound writes.

Outbound files are written under `<root>/.staging/<account>/` (same file system, outside every jail) and
renamed into place, so an MCP never sees half a file.

Uploads in progress under a final name have a marker in `<root>/.uploading/<account>/<name>` (also outside
every jail) holding the token of the gateway process that wrote it: a marker left by another process means
that process died mid-upload and the file is partial (see ADR 0081, "Incomplete uploads").
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

INBOUND = "inbound"
OUTBOUND = "outbound"
UPLOADING = ".uploading"


class Jail:
    """Folders of every account under one root."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

    def home(self, account: str) -> Path:
        """The account's root folder (created with inbound/ and outbound/ if missing)."""
        home = self.root / account
        for sub in (INBOUND, OUTBOUND):
            (home / sub).mkdir(parents=True, exist_ok=True)
        return home

    def inbound(self, account: str) -> Path:
        return self.home(account) / INBOUND

    def outbound(self, account: str) -> Path:
        return self.home(account) / OUTBOUND

    def usage(self, account: str) -> int:
        """Bytes the account's files take (inbound and outbound)."""
        total = 0
        for folder in (self.inbound(account), self.outbound(account)):
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        return total

    def write_outbound(self, account: str, name: str, content: bytes) -> str:
        """Write a file into the account's outbound/ atomically; returns its path inside the jail."""
        if "/" in name or name in ("", ".", ".."):
            raise ValueError("an outbound file name is a single path component")
        staging = self.root / ".staging" / account
        staging.mkdir(parents=True, exist_ok=True)
        target = self.outbound(account) / name
        fd, tmp = tempfile.mkstemp(dir=staging, prefix=".out-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return f"/{OUTBOUND}/{name}"

    # ------------------------------------------------------------------------------ upload-in-progress markers

    def _marker(self, account: str, name: str) -> Path:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError("an inbound file name is a single path component")
        return self.root / UPLOADING / account / name

    def mark_upload(self, account: str, name: str, owner: str) -> None:
        """Record, durably, that `owner` (a gateway process token) is writing inbound/<name>.

        Written and fsynced (file and folder) before the upload's file is created, so no crash can leave a
        partial file without its marker."""
        marker = self._marker(account, name)
        marker.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=marker.parent, prefix=".mark-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(owner)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, marker)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(marker.parent)

    def upload_owner(self, account: str, name: str) -> str | None:
        """The token of the process that marked inbound/<name> as being written, or None (no marker)."""
        try:
            return self._marker(account, name).read_text()
        except (FileNotFoundError, ValueError):
            return None

    def clear_upload(self, account: str, name: str, owner: str | None = None) -> None:
        """Remove the marker of inbound/<name> (only if `owner` still holds it, when given)."""
        if owner is not None and self.upload_owner(account, name) != owner:
            return
        with contextlib.suppress(FileNotFoundError):
            self._marker(account, name).unlink()

    def move_upload(self, account: str, old: str, new: str) -> None:
        """Carry the marker along when a file being written is renamed (no-op without a marker)."""
        with contextlib.suppress(FileNotFoundError):
            os.replace(self._marker(account, old), self._marker(account, new))

    def stale_uploads(self, account: str, owner: str) -> list[str]:
        """Names under inbound/ marked by a process other than `owner`; markers without a file are dropped."""
        folder = self.root / UPLOADING / account
        if not folder.is_dir():
            return []
        names = []
        for entry in os.scandir(folder):
            if entry.name.startswith(".mark-") or not entry.is_file(follow_symlinks=False):
                continue
            if self.upload_owner(account, entry.name) == owner:
                continue
            if (self.inbound(account) / entry.name).exists():
                names.append(entry.name)
            else:
                # The process died between marking and creating the file, or the MCP removed it: nothing to do.
                self.clear_upload(account, entry.name)
        return names


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
