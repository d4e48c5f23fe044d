"""Every query of the eligibility service, and the unit of work that exposes them."""

from __future__ import annotations

from shared.uow import UnitOfWork


class EligibilityUnitOfWork(UnitOfWork):
    """One transaction of the eligibility service; repositories are built on its session."""
