"""HTTP routes of the sftp-gateway service: validate, call service.py, map domain errors to problem+json."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["sftp-gateway"])
