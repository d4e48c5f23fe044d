"""Alembic environment of the referrals service (run through `calhub migrate referrals`)."""

from shared.migrations import run_env

run_env()
