"""Event handlers of the ops service and its registry."""

from __future__ import annotations

from ops.repository import OpsUnitOfWork
from shared.bus.registry import HandlerRegistry

registry: HandlerRegistry[OpsUnitOfWork] = HandlerRegistry()
