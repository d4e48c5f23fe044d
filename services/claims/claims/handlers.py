"""Event handlers of the claims service and its registry."""

from __future__ import annotations

from claims.repository import ClaimsUnitOfWork
from shared.bus.registry import HandlerRegistry

registry: HandlerRegistry[ClaimsUnitOfWork] = HandlerRegistry()
