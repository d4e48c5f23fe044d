"""Per-MCP profiles: the account, file recognition, column layouts, PGP, remote server, schedules and calendar.

A profile is data (one YAML file per MCP); this module validates it and answers questions about it. Reading
the files is the adapter's job (`sftp_gateway.profiles_store`), so everything here is pure and table-tested.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sftp_gateway.domain.records import RECORDS, WRITTEN_CODES
from shared.contracts.gateway import FileKind

_ACCOUNT = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,49}$")
# What an encrypted upload is called; the suffix is stripped before the name is recognized.
ENCRYPTED_SUFFIXES = (".pgp", ".gpg", ".asc")
# Names a client uses while a transfer is in flight; a rename away from one of these completes the upload.
TEMPORARY_SUFFIXES = (".tmp", ".part", ".filepart", ".partial", ".uploading")


class ProfileError(ValueError):
    """A profile file is not valid; the message names the file's field and rule (profiles carry no PHI)."""


class RowPolicy(StrEnum):
    """What happens to the good rows of a file that also has bad rows."""

    ROW_LEVEL = "row_level"  # good rows are published, bad rows quarantined
    ALL_OR_NOTHING = "all_or_nothing"  # one bad row quarantines the whole file


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Account(_Model):
    """The MCP's SFTP account on the gateway: public keys only unless passwords are explicitly enabled."""

    username: str
    authorized_keys: tuple[str, ...] = ()

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not _ACCOUNT.match(value):
            raise ValueError("must be 2-32 characters: a lowercase letter, then letters, digits, '_' or '-'")
        return value

    @field_validator("authorized_keys")
    @classmethod
    def _keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for line in value:
            parts = line.split()
            if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
                raise ValueError("each key must be an OpenSSH public key line ('ssh-ed25519 AAAA... comment')")
        return value


class Limits(_Model):
    """Per-file and per-account size limits (bytes)."""

    max_file_bytes: int = Field(200 * 1024 * 1024, ge=1)
    max_account_bytes: int = Field(2 * 1024 * 1024 * 1024, ge=1)


class FilePattern(_Model):
    """A file-name rule: a glob (`LAC_MIF_*.txt`) or a regex; a regex group `period` names the reporting
    period (YYYYMM or YYYY-MM)."""

    kind: FileKind
    glob: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one_matcher(self) -> FilePattern:
        if (self.glob is None) == (self.regex is None):
            raise ValueError("give exactly one of glob or regex")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex does not compile: {exc.msg}") from None
        return self

    def match(self, name: str) -> re.Match[str] | bool:
        """A regex match (with groups), True for a glob match, or False."""
        if self.regex is not None:
            return re.fullmatch(self.regex, name, flags=re.IGNORECASE) or False
        assert self.glob is not None
        return fnmatch.fnmatchcase(name.lower(), self.glob.lower())


class Quoting(StrEnum):
    MINIMAL = "minimal"  # RFC 4180: quote fields that contain the delimiter, the quote or a line break
    ALL = "all"
    NONE = "none"  # no quote character at all (some pipe-delimited MCP files)


class Layout(_Model):
    """How one MCP writes one kind of tabular file: the mapping of its columns onto the canonical record."""

    delimiter: str = ","
    quoting: Quoting = Quoting.MINIMAL
    quotechar: str = '"'
    header: bool = True
    encoding: str = "utf-8"
    line_ending: Literal["crlf", "lf"] = "crlf"
    # File column -> canonical field (see sftp_gateway.domain.records). Without a header the order of this
    # mapping is the column order.
    columns: dict[str, str]
    date_formats: tuple[str, ...] = ("%Y-%m-%d",)
    # Canonical field -> {file value -> canonical value}, e.g. ecm_status {"A": "authorized"}. Unmapped values
    # pass through unchanged unless the field is listed in `strict_values`.
    value_maps: dict[str, dict[str, str]] = Field(default_factory=dict)
    strict_values: tuple[str, ...] = ()
    list_separator: str = ";"
    # Canonical fields required beyond the record's own required fields.
    required: tuple[str, ...] = ()
    minutes_per_unit: int = Field(15, ge=1, description="OTF: minutes one billed unit of outreach stands for.")

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        value = {"\\t": "\t", "tab": "\t", "pipe": "|", "comma": ","}.get(value, value)
        if len(value) != 1 or value in "\r\n":
            raise ValueError("must be one character (or tab, pipe, comma)")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError("unknown text encoding") from None
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("map at least one column")
        fields = list(value.values())
        doubled = sorted({f for f in fields if fields.count(f) > 1})
        if doubled:
            raise ValueError(f"canonical fields mapped twice: {', '.join(doubled)}")
        return value

    def column_for(self, field: str) -> str | None:
        """The file's column name for a canonical field, or None if the layout does not carry it."""
        for column, canonical in self.columns.items():
            if canonical == field:
                return column
        return None


class Pgp(_Model):
    """OpenPGP settings: whether inbound files must be encrypted and outbound files are encrypted, to whom."""

    inbound_required: bool = False
    outbound_encrypt: bool = False
    recipient: str | None = Field(None, description="Fingerprint of the MCP's public key (outbound).")
    public_key: str | None = Field(None, description="The MCP's ASCII-armored public key, imported on load.")

    @model_validator(mode="after")
    def _recipient(self) -> Pgp:
        if self.outbound_encrypt and not self.recipient:
            raise ValueError("outbound_encrypt needs the recipient's key fingerprint")
        return self


class Remote(_Model):
    """Client mode: the MCP's own SFTP server the gateway polls and pushes to."""

    host: str
    port: int = Field(22, ge=1, le=65535)
    username: str
    client_key: str = Field(description="Path of the gateway's private key for this server (outside the repo; "
                                        "relative paths are under the data directory).")
    host_key: str = Field(description="The server's public host key (OpenSSH line): pinned, never learnt.")
    inbound_dir: str = "/outbound"  # where the MCP leaves files for the hub
    outbound_dir: str = "/inbound"  # where the hub leaves files for the MCP
    poll_interval_seconds: float = Field(300.0, gt=0)
    retries: int = Field(3, ge=1)
    retry_backoff_seconds: float = Field(2.0, ge=0)
    connect_timeout_seconds: float = Field(15.0, gt=0)
    settle_seconds: float = Field(2.0, ge=0, description="A file is fetched only if its size and time are the "
                                                         "same after this long (the MCP may still be writing it).")
    delete_after_fetch: bool = True
    push: bool = True


class ReturnSchedule(_Model):
    """When a monthly provider file (RTF, OTF) is generated: day of month and hour, Pacific time."""

    day_of_month: int = Field(ge=1, le=28)
    hour: int = Field(6, ge=0, le=23)


class Outbound(_Model):
    """Files the gateway writes for the MCP."""

    referral_channel: Literal["sftp", "api", "none"] = "none"
    referral_batch: Literal["immediate", "daily"] = "daily"
    referral_batch_hour: int = Field(18, ge=0, le=23)
    # kind -> file name template; fields: {mcp}, {kind}, {date} (YYYYMMDD), {time} (HHMMSS), {period}
    # (YYYYMM), {source_id}, {seq}.
    naming: dict[FileKind, str] = Field(default_factory=dict)
    rtf: ReturnSchedule | None = None
    otf: ReturnSchedule | None = None

    def name_for(self, kind: FileKind, fields: Mapping[str, str]) -> str:
        """The file name for an outbound file of a kind (a default when the profile names none); raises
        ProfileError when the template names an unknown placeholder or makes a path."""
        template = self.naming.get(kind) or _DEFAULT_NAMES.get(kind, "{mcp}_{kind}_{date}_{time}_{source_id}.txt")
        try:
            name = template.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise ProfileError(f"outbound.naming.{kind.value}: unknown placeholder ({type(exc).__name__})") from None
        if "/" in name or name.startswith("."):
            raise ProfileError(f"outbound.naming.{kind.value}: a file name cannot contain '/' or start with '.'")
        return name


_DEFAULT_NAMES: dict[FileKind, str] = {
    FileKind.X12_837P: "{mcp}_837P_{date}_{time}_{source_id}.x12",
    FileKind.INVOICE: "{mcp}_INVOICE_{date}_{time}_{source_id}.csv",
    FileKind.X12_270: "{mcp}_270_{date}_{time}_{source_id}.x12",
    FileKind.RTF: "{mcp}_RTF_{period}_{date}.csv",
    FileKind.OTF: "{mcp}_OTF_{period}_{date}.csv",
    FileKind.REFERRAL: "{mcp}_REFERRAL_{date}_{time}_{seq}.csv",
    FileKind.ERROR_REPORT: "{source_id}.errors.csv",
}


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class Expectation(_Model):
    """One line of the expected-file calendar: a kind that must arrive by a day (end of day, Pacific)."""

    kind: FileKind
    monthly_by_day: int | None = Field(None, ge=1, le=31)
    days_of_month: tuple[Annotated[int, Field(ge=1, le=31)], ...] | None = None
    weekly_on: Weekday | None = None
    roll_to_business_day: bool = Field(
        True, description="A due day on a weekend or state holiday moves to the next business day.")

    @model_validator(mode="after")
    def _one_rule(self) -> Expectation:
        given = [r for r in (self.monthly_by_day, self.days_of_month, self.weekly_on) if r is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of monthly_by_day, days_of_month, weekly_on")
        if self.days_of_month is not None and not self.days_of_month:
            raise ValueError("days_of_month needs at least one day")
        return self

    def describe(self) -> str:
        """The rule in words, e.g. 'monthly by day 10'."""
        if self.monthly_by_day is not None:
            return f"monthly by day {self.monthly_by_day}"
        if self.days_of_month is not None:
            return "on days " + ", ".join(str(d) for d in self.days_of_month)
        return f"weekly on {self.weekly_on}"


class Provider(_Model):
    """The hub as the ECM/CS provider of record on RTF and OTF rows."""

    name: str = ""
    npi: str = ""
    tin: str = ""
    phone: str = ""
    provider_type: str = "CBO"


class Profile(_Model):
    """Everything the gateway knows about one MCP's file exchange."""

    mcp_code: str
    name: str
    account: Account
    limits: Limits = Limits()
    files: tuple[FilePattern, ...] = ()
    layouts: dict[FileKind, Layout] = Field(default_factory=dict)
    row_policy: RowPolicy = RowPolicy.ROW_LEVEL
    pgp: Pgp = Pgp()
    remote: Remote | None = None
    outbound: Outbound = Outbound()
    calendar: tuple[Expectation, ...] = ()
    provider: Provider = Provider()
    mcp_id: str = Field("", description="The MCP identifier the MCP wants on RTF/OTF rows (primary payer id).")

    @field_validator("mcp_code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not _CODE.match(value):
            raise ValueError("must be a lowercase plan code (letters, digits, '_' or '-')")
        return value

    @model_validator(mode="after")
    def _layouts_known(self) -> Profile:
        for kind, layout in self.layouts.items():
            record = RECORDS.get(kind)
            if record is None:
                raise ValueError(f"layouts.{kind.value}: no canonical record for this kind")
            unknown = sorted(set(layout.columns.values()) - set(record.fields))
            if unknown:
                raise ValueError(f"layouts.{kind.value}.columns: unknown canonical fields {', '.join(unknown)}")
        if self.outbound.referral_channel == "sftp" and FileKind.REFERRAL not in self.layouts:
            raise ValueError("outbound.referral_channel is sftp but layouts.referral is missing")
        for kind in (FileKind.RTF, FileKind.OTF):
            if getattr(self.outbound, kind.value) is not None and kind not in self.layouts:
                raise ValueError(f"outbound.{kind.value} is scheduled but layouts.{kind.value} is missing")
        for kind, fields in WRITTEN_CODES.items():
            written = self.layouts.get(kind)
            if written is None:
                continue
            for field, values in fields.items():
                mapping = written.value_maps.get(field)
                if mapping is None:
                    continue  # the MCP takes CalHub's words for this field as they are
                missing = sorted(values - set(mapping.values()))
                if missing:
                    raise ValueError(
                        f"profile {self.mcp_code}: layouts.{kind.value}.value_maps.{field} (column "
                        f"{written.column_for(field)}) has no code for {', '.join(missing)}, which the gateway "
                        "writes")
        return self

    def recognize(self, name: str) -> Recognition | None:
        """The kind (and reporting period, when the name carries one) of a file name, or None."""
        bare = strip_encryption_suffix(name)
        for pattern in self.files:
            matched = pattern.match(bare)
            if matched:
                period = None
                if isinstance(matched, re.Match) and "period" in matched.re.groupindex:
                    period = normalize_period(matched.group("period") or "")
                return Recognition(kind=pattern.kind, period=period)
        return None

    def public_view(self) -> dict[str, Any]:
        """The profile as the API shows it (public keys and settings; a client key path is not shown)."""
        data = self.model_dump(mode="json")
        if data.get("remote"):
            data["remote"].pop("client_key", None)
        return data


class Recognition(_Model):
    """What a file name says: its kind and, if the name carries it, the reporting period (YYYY-MM)."""

    kind: FileKind
    period: str | None = None


def strip_encryption_suffix(name: str) -> str:
    """The name without a trailing .pgp/.gpg/.asc."""
    lowered = name.lower()
    for suffix in ENCRYPTED_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_encrypted_name(name: str) -> bool:
    """True when the name says the file is OpenPGP-encrypted."""
    return name.lower().endswith(ENCRYPTED_SUFFIXES)


def is_temporary_name(name: str) -> bool:
    """True for a name a client uses while a transfer is in flight (never processed)."""
    return name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES)


_PERIOD = re.compile(r"^(?:(\d{4})-?(0[1-9]|1[0-2])|(0[1-9]|1[0-2])[/-]?(\d{4}))$")


def normalize_period(text: str) -> str | None:
    """A reporting period as YYYY-MM from YYYYMM, YYYY-MM, MM/YYYY or MMYYYY; None if it is none of those."""
    match = _PERIOD.match(text.strip())
    if match is None:
        return None
    year, month = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
    return f"{year}-{month}"


def parse_profile(text: str, source: str = "profile") -> Profile:
    """Validate one profile's YAML text; raises ProfileError naming the field and rule broken."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ProfileError(f"{source}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile is a mapping")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'profile'}: {error['msg']}" for error in exc.errors())
        raise ProfileError(f"{source}: {problems}") from None


def check_profiles(profiles: list[Profile]) -> None:
    """Raise ProfileError if two profiles share an MCP code or an SFTP account."""
    seen_codes: set[str] = set()
    seen_accounts: set[str] = set()
    for profile in profiles:
        if profile.mcp_code in seen_codes:
            raise ProfileError(f"two profiles for MCP {profile.mcp_code}")
        if profile.account.username in seen_accounts:
            raise ProfileError(f"two profiles use the SFTP account {profile.account.username}")
        seen_codes.add(profile.mcp_code)
        seen_accounts.add(profile.account.username)
