"""Tables of the eligibility service, all in its own schema `eligibility`."""

from __future__ import annotations

from shared.db import declarative_base
from shared.platform_tables import define_platform_tables

SCHEMA = "eligibility"

Base = declarative_base(SCHEMA)
platform = define_platform_tables(Base.metadata)
