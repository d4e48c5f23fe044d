"""Alembic environment of the eligibility service (run through `calhub migrate eligibility`)."""

from shared.migrations import run_env

run_env()
