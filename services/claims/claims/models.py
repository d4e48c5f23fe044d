"""Tables of the claims service, all in its own schema `claims`."""

from __future__ import annotations

from shared.db import declarative_base
from shared.platform_tables import define_platform_tables

SCHEMA = "claims"

Base = declarative_base(SCHEMA)
platform = define_platform_tables(Base.metadata)
