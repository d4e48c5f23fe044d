"""Every query of the sftp-gateway service, and the unit of work that exposes them."""

from __future__ import annotations

from shared.uow import UnitOfWork


class SftpGatewayUnitOfWork(UnitOfWork):
    """One transaction of the sftp-gateway service; repositories are built on its session."""
