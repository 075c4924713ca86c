"""For the tests that show whether a token's signature was checked again: common's verifier,
auth's step tokens, the portal's login cookie."""

from typing import Any

import jwt
import pytest


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each token passed to jwt.decode from now on, in order (until monkeypatch undoes it): the
    verifiers call it to check a token's signature and claims."""
    seen: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    return seen
