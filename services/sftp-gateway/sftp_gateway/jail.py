"""The MCP accounts' folders on disk: `<root>/<account>/inbound` and `outbound`, and atomic outbound writes.

Outbound files are written under `<root>/.staging/<account>/` (same file system, outside every jail) and
renamed into place, so an MCP never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

INBOUND = "inbound"
OUTBOUND = "outbound"


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
