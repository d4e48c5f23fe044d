"""Alembic environment of the claims service (run through `calhub migrate claims`)."""

from shared.migrations import run_env

run_env()
