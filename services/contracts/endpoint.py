"""An internal endpoint as both sides see it, and the typed call on top of ServiceClient."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from services.common.errors import DependencyUnavailable, Forbidden
from services.common.metrics import dependency_failed
from services.common.service_client import ServiceClient

log = logging.getLogger(__name__)


class Contract(BaseModel):
    """Base of every request and answer between services; unknown fields are ignored."""

    model_config = ConfigDict(frozen=True)


RequestT = TypeVar("RequestT", bound=Contract)
AnswerT = TypeVar("AnswerT", bound=Contract)


@dataclass(frozen=True)
class Endpoint(Generic[RequestT, AnswerT]):
    """POST `path` on `callee`, open to `callers` only: a `request` in, an `answer` out.

    `idempotent`: sending it twice does what sending it once does (a lookup, an end, a
    revocation), so ServiceClient may send it once more when the first try got no answer.
    """

    callee: str
    path: str
    callers: frozenset[str]
    request: type[RequestT]
    answer: type[AnswerT]
    status_code: int = 200
    idempotent: bool = False

    def allow(self, caller: str) -> None:
        """The callee's check: a caller off this endpoint's list is refused (403)."""
        if caller not in self.callers:
            raise Forbidden(detail=f"{caller} may not call {self.path}")


def _fields(error: ValidationError) -> list[str]:
    # Where the shape was wrong, never the value: it may be a session id or a token.
    return [".".join(str(part) for part in item["loc"]) or "(body)" for item in error.errors()]


class ContractClient:
    """A typed client of one callee: requests and answers are checked against the contract.

    A request the callee would refuse, or an answer outside the contract, is the callee's
    fault or ours, never the customer's: it becomes DependencyUnavailable (a calm 503).
    """

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def send(
        self, endpoint: Endpoint[RequestT, AnswerT], build: Callable[[], RequestT]
    ) -> AnswerT | None:
        """The callee's answer; None when it answered 404."""
        try:
            body = build()
        except ValidationError as error:
            log.error(
                "request to %s%s outside the contract: %s", endpoint.callee, endpoint.path, _fields(error)
            )
            raise DependencyUnavailable(detail=f"request to {endpoint.path} outside the contract") from error
        # Encoded by pydantic straight to bytes: the same JSON as model_dump(mode="json") then
        # json.dumps, without the dict in between.
        response = await self.client.call(
            endpoint.path, body.model_dump_json(exclude_none=True).encode(), idempotent=endpoint.idempotent
        )
        if response.status_code == 404:
            return None
        try:
            return endpoint.answer.model_validate_json(response.content)
        except ValidationError as error:
            log.error(
                "answer of %s%s outside the contract: %s", endpoint.callee, endpoint.path, _fields(error)
            )
            dependency_failed(endpoint.callee)
            raise DependencyUnavailable(detail=f"{endpoint.callee} answered outside the contract") from error

    async def expect(self, endpoint: Endpoint[RequestT, AnswerT], build: Callable[[], RequestT]) -> AnswerT:
        """The callee's answer, where a 404 is a missing endpoint, not an answer."""
        answer = await self.send(endpoint, build)
        if answer is None:
            log.error("%s%s answered 404", endpoint.callee, endpoint.path)
            dependency_failed(endpoint.callee)
            raise DependencyUnavailable(detail=f"{endpoint.callee} has no {endpoint.path}")
        return answer
