"""Every query of the authorizations service, and the unit of work that exposes them."""

from __future__ import annotations

from shared.uow import UnitOfWork


class AuthorizationsUnitOfWork(UnitOfWork):
    """One transaction of the authorizations service; repositories are built on its session."""
