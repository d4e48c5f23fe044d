"""The profile catalogue: per-MCP YAML files read from the profiles folder, reloadable at run time.

A reload that finds any invalid file keeps the profiles in force and reports the problems: one broken file
must not take every MCP's exchange down.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from sftp_gateway.domain.profile import Profile, ProfileError, check_profiles, parse_profile

log = logging.getLogger("calhub.sftp_gateway.profiles")


@dataclass
class ReloadResult:
    """What a reload did: the MCP codes now loaded, or the problems that kept the previous set."""

    loaded: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    version: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


class ProfileCatalog:
    """Profiles by MCP code and by SFTP account name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._by_code: dict[str, Profile] = {}
        self._by_account: dict[str, Profile] = {}
        self.version = ""

    @classmethod
    def from_profiles(cls, profiles: list[Profile]) -> ProfileCatalog:
        """A catalogue of given profiles (tests, `calhub files inspect`)."""
        catalog = cls(Path("."))
        catalog._install(profiles, "given")
        return catalog

    def _install(self, profiles: list[Profile], version: str) -> None:
        check_profiles(profiles)
        self._by_code = {p.mcp_code: p for p in profiles}
        self._by_account = {p.account.username: p for p in profiles}
        self.version = version

    def reload(self) -> ReloadResult:
        """Read every *.yaml / *.yml file of the folder; on any error keep the current profiles."""
        result = ReloadResult()
        if not self.folder.is_dir():
            result.errors.append(f"profiles folder {self.folder} does not exist")
            return result
        profiles: list[Profile] = []
        digest = hashlib.sha256()
        for path in sorted([*self.folder.glob("*.yaml"), *self.folder.glob("*.yml")]):
            text = path.read_text(encoding="utf-8")
            digest.update(path.name.encode() + b"\0" + text.encode())
            try:
                profiles.append(parse_profile(text, path.name))
            except ProfileError as exc:
                result.errors.append(str(exc))
        if not result.errors:
            try:
                self._install(profiles, digest.hexdigest()[:16])
            except ProfileError as exc:
                result.errors.append(str(exc))
        if result.errors:
            log.warning("profile reload failed; keeping the profiles in force", extra={"count": len(result.errors)})
        result.loaded = sorted(self._by_code)
        result.version = self.version
        return result

    def get(self, mcp_code: str) -> Profile | None:
        """The profile of an MCP, or None."""
        return self._by_code.get(mcp_code)

    def for_account(self, username: str) -> Profile | None:
        """The profile whose SFTP account is `username`, or None."""
        return self._by_account.get(username)

    def all(self) -> list[Profile]:
        """Every profile, by MCP code."""
        return [self._by_code[code] for code in sorted(self._by_code)]
