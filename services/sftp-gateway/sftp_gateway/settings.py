"""Settings of the sftp-gateway service (environment prefix `SFTP_GATEWAY_`)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

PACKAGED_PROFILES = Path(__file__).resolve().parent / "profiles"


class SftpGatewaySettings(ServiceSettings):
    """Settings of the sftp-gateway service."""

    service_name: ClassVar[str] = "sftp_gateway"
    model_config = SettingsConfigDict(env_prefix="SFTP_GATEWAY_", extra="ignore")

    port: int = Field(8005, description="Port `calhub serve sftp-gateway` listens on.")
    sftp_enabled: bool = Field(True, description="Run the SFTP server.")
    sftp_host: str = Field("127.0.0.1", description="Address the SFTP server binds (0.0.0.0 in containers).")
    sftp_port: int = Field(2222, ge=0, le=65535,
                           description="SFTP port (`calhub run --sftp-port`); 0 picks a free port.")
    host_key_path: Path | None = Field(
        None, description="SSH host key; generated on first start when absent (default "
                          "<data dir>/sftp-gateway/ssh_host_ed25519_key). Never committed.")
    profiles_dir: Path = Field(PACKAGED_PROFILES, description="Folder of per-MCP profile YAML files.")
    sftp_root: Path | None = Field(
        None, description="Where the MCP accounts' folders live (default <data dir>/sftp-gateway/accounts).")
    gnupg_home: Path | None = Field(
        None, description="GNUPGHOME with the hub's private key and the MCPs' public keys (default "
                          "<data dir>/sftp-gateway/gnupg).")
    pgp_passphrase: str | None = Field(None, description="Passphrase of the hub's private PGP key, if it has one.")
    keys_dir: Path | None = Field(
        None, description="Base of relative client-key paths in profiles (default <data dir>/sftp-gateway/keys).")
    archive_retention_days: int = Field(
        3650, ge=1, description="How long archived file bytes are kept (recorded per file as retain_until).")
    allow_passwords: bool = Field(False, description="Never on in production: accounts use public keys only.")
    scheduler_poll_seconds: float = Field(1.0, gt=0, description="How often due timers are looked for.")
    client_mode: bool = Field(True, description="Poll and push to MCP servers whose profile has `remote`.")
    closed_loop_exempt: tuple[str, ...] = Field(
        ("sobering_centers",), description="Community Support codes exempt from closed-loop RTF reporting.")
    max_concurrent_ingests: int = Field(4, ge=1, description="Uploads processed at the same time at most.")
    error_report_limit: int = Field(10_000, ge=1, description="Problems listed in one error report at most.")
