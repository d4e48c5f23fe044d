"""Alembic environment of the authorizations service (run through `calhub migrate authorizations`)."""

from shared.migrations import run_env

run_env()
