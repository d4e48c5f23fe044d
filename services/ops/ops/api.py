"""HTTP routes of the ops service: validate, call service.py, map domain errors to problem+json."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["ops"])
