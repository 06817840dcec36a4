"""Authentication and access checks shared by the gRPC services."""

from __future__ import annotations

from typing import Any

from .access import AccessPolicy
from .auth import ANONYMOUS, Authenticator, Identity, bearer_token

__all__ = ["Guard"]


class Guard:
    """Identifies the caller of an RPC and applies the access policy.

    Without an authenticator every caller is anonymous and the policy allows everything.
    """

    def __init__(self, authenticator: Authenticator | None = None, *, policy: AccessPolicy | None = None) -> None:
        self.authenticator = authenticator
        self.policy = policy or AccessPolicy.allow_all()

    @property
    def enabled(self) -> bool:
        return self.authenticator is not None

    async def identify(self, context: Any) -> Identity:
        if self.authenticator is None:
            return ANONYMOUS
        return await self.authenticator.authenticate(bearer_token(context.invocation_metadata()))
