"""Tables of the referrals service, all in its own schema `referrals`."""

from __future__ import annotations

from shared.db import declarative_base
from shared.platform_tables import define_platform_tables

SCHEMA = "referrals"

Base = declarative_base(SCHEMA)
platform = define_platform_tables(Base.metadata)
