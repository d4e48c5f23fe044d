"""Event handlers of the authorizations service and its registry."""

from __future__ import annotations

from authorizations.repository import AuthorizationsUnitOfWork
from shared.bus.registry import HandlerRegistry

registry: HandlerRegistry[AuthorizationsUnitOfWork] = HandlerRegistry()
