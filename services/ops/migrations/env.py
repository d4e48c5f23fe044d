"""Alembic environment of the ops service (run through `calhub migrate ops`)."""

from shared.migrations import run_env

run_env()
