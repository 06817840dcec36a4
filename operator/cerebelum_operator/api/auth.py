"""Who is calling: bearer tokens checked by a pluggable authenticator.

`cerebelum dev --token` uses a shared secret (:class:`StaticTokenAuthenticator`); the operator
asks the Kubernetes API with a TokenReview (``kube.token_review``). Without an authenticator every
caller is :data:`ANONYMOUS` and allowed everything, which is what a laptop wants and why the Helm
chart turns authentication on.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "ANONYMOUS",
    "AuthUnavailable",
    "Authenticator",
    "Identity",
    "PermissionDenied",
    "StaticTokenAuthenticator",
    "Unauthenticated",
    "bearer_token",
]

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


class Unauthenticated(Exception):
    """No credentials, or credentials the authenticator refused."""


class PermissionDenied(Exception):
    """An authenticated caller asked for something its access rules do not allow."""


class AuthUnavailable(Exception):
    """The authenticator could not decide (for example the API server is unreachable)."""


@dataclass(frozen=True, slots=True)
class Identity:
    username: str
    groups: tuple[str, ...] = ()
    authenticated: bool = True
    # A shared secret names no person: an approval made with it records the approver it claims.
    shared: bool = False

    @property
    def service_account_namespace(self) -> str | None:
        """``ns`` for ``system:serviceaccount:ns:name``, else ``None``."""
        if not self.username.startswith(SERVICE_ACCOUNT_PREFIX):
            return None
        namespace, _, name = self.username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
        return namespace if namespace and name else None


ANONYMOUS = Identity("anonymous", authenticated=False)


class Authenticator(Protocol):
    async def authenticate(self, token: str) -> Identity:
        """The token's identity; raises :class:`Unauthenticated` or :class:`AuthUnavailable`."""
        ...


class StaticTokenAuthenticator:
    """One shared secret, compared in constant time; its holder is ``username``."""

    def __init__(self, token: str, *, username: str = "dev") -> None:
        if len(token) < 16:
            raise ValueError("the token must be at least 16 characters")
        self._token = token.encode()
        self._identity = Identity(username, shared=True)

    async def authenticate(self, token: str) -> Identity:
        if not hmac.compare_digest(token.encode(), self._token):
            raise Unauthenticated("the bearer token is not valid")
        return self._identity


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The token of the ``authorization: Bearer <token>`` header; raises if absent or malformed."""
    values = [value for key, value in metadata or () if key.lower() == "authorization"]
    if not values:
        raise Unauthenticated("no credentials: send an 'authorization: Bearer <token>' header")
    value = values[0] if isinstance(values[0], str) else values[0].decode(errors="replace")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("malformed authorization header: expected 'Bearer <token>'")
    return token.strip()
