"""Alembic environment of the sftp-gateway service (run through `calhub migrate sftp-gateway`)."""

from shared.migrations import run_env

run_env()
