"""The portal owns no database: its logouts go into auth's audit trail."""

import logging

from fastapi import Request

from services.common.errors import DependencyUnavailable
from services.common.web import client_ip, user_agent
from services.contracts.auth import AuthInternalClient

from .store import PortalSession

log = logging.getLogger(__name__)


class LogoutAudit:
    def __init__(self, auth: AuthInternalClient) -> None:
        self.auth = auth

    async def record(self, request: Request, session: PortalSession | None, outcome: str) -> None:
        if session is None:
            return
        try:
            await self.auth.record_logout(
                outcome,
                user_id=session.user_id,
                username=session.username,
                ip=client_ip(request),
                user_agent=user_agent(request),
            )
        except DependencyUnavailable as error:
            # The customer's logout matters more than its audit row: end the session regardless.
            log.warning("logout of user_id=%s not audited: %s", session.user_id, error.detail)
