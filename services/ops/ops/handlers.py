"""Event handlers of the ops service: none. Ops reads every topic through its own journal consumer (journal.py),
which keeps messages a handler registry would skip (unknown types, malformed messages, dead letters)."""

from __future__ import annotations

from ops.repository import OpsUnitOfWork
from shared.bus.registry import HandlerRegistry

registry: HandlerRegistry[OpsUnitOfWork] = HandlerRegistry()
