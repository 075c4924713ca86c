"""The portal owns no database: its logouts go into auth's audit trail."""

import logging

from fastapi import Request

from services.common.errors import DependencyUnavailable
from services.common.service_client import ServiceClient
from services.common.web import client_ip, user_agent

from .store import PortalSession

log = logging.getLogger(__name__)


class LogoutAudit:
    def __init__(self, auth: ServiceClient) -> None:
        self.auth = auth

    async def record(self, request: Request, session: PortalSession | None, outcome: str) -> None:
        if session is None:
            return
        entry = {
            "event": "logout",
            "outcome": outcome,
            "user_id": session.user_id,
            "username": session.username,
            "ip": client_ip(request),
            "user_agent": user_agent(request),
        }
        try:
            response = await self.auth.call("/internal/audit", entry)
        except DependencyUnavailable:
            # The customer's logout matters more than its audit row: end the session regardless.
            log.warning("logout of user_id=%s not audited: auth unavailable", session.user_id)
            return
        if response.status_code != 201:
            log.warning(
                "logout of user_id=%s not audited: auth answered %s", session.user_id, response.status_code
            )
