"""Event handlers of the eligibility service and its registry."""

from __future__ import annotations

from eligibility.repository import EligibilityUnitOfWork
from shared.bus.registry import HandlerRegistry

registry: HandlerRegistry[EligibilityUnitOfWork] = HandlerRegistry()
