"""HTTP routes of the claims service: validate, call service.py, map domain errors to problem+json."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["claims"])
