"""Every query of the claims service, and the unit of work that exposes them."""

from __future__ import annotations

from shared.uow import UnitOfWork


class ClaimsUnitOfWork(UnitOfWork):
    """One transaction of the claims service; repositories are built on its session."""
