"""Event handlers of the referrals service and its registry."""

from __future__ import annotations

from referrals.repository import ReferralsUnitOfWork
from shared.bus.registry import HandlerRegistry

registry: HandlerRegistry[ReferralsUnitOfWork] = HandlerRegistry()
