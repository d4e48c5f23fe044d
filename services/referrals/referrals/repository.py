"""Every query of the referrals service, and the unit of work that exposes them."""

from __future__ import annotations

from shared.uow import UnitOfWork


class ReferralsUnitOfWork(UnitOfWork):
    """One transaction of the referrals service; repositories are built on its session."""
