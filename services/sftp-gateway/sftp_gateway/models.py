"""Tables of the sftp-gateway service, all in its own schema `sftp_gateway`."""

from __future__ import annotations

from shared.db import declarative_base
from shared.platform_tables import define_platform_tables

SCHEMA = "sftp_gateway"

Base = declarative_base(SCHEMA)
platform = define_platform_tables(Base.metadata)
