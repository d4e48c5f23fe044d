"""Every query of the ops service, and the unit of work that exposes them."""

from __future__ import annotations

from shared.uow import UnitOfWork


class OpsUnitOfWork(UnitOfWork):
    """One transaction of the ops service; repositories are built on its session."""
