"""Who is calling: bearer tokens checked by a pluggable authenticator.

`cerebelum dev --token` uses a shared secret (:class:`StaticTokenAuthenticator`); the operator
asks the Kubernetes API with a TokenReview (``kube.token_review``). Without an authenticator every
caller is :data:`ANONYMOUS` and allowed everything, which is what a laptop wants and why the Helm
chart turns authentication on.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "ANONYMOUS",
    "AuthUnavailable",
    "Authenticator",
    "Identity",
    "PermissionDenied",
    "StaticTokenAuthenticator",
    "TokenFileAuthenticator",
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


class TokenFileAuthenticator:
    """Several people, each with a token of their own (``cerebelum dev --tokens FILE``)::

        tokens:
          - token: "a-secret-of-16-or-more-characters"
            user: alice
            groups: [admins]

    Each token names a person, so an approval made with it records that person, and an access
    policy can tell people apart (one may act, another only read).
    """

    def __init__(self, document: Any) -> None:
        if not isinstance(document, dict) or set(document) != {"tokens"} or not isinstance(document["tokens"], list):
            raise ValueError("expected a mapping with one key, 'tokens': a list of {token, user, groups}")
        self._identities: dict[bytes, Identity] = {}
        for index, entry in enumerate(document["tokens"]):
            where = f"tokens[{index}]"
            if not isinstance(entry, dict) or not set(entry) <= {"token", "user", "groups"}:
                raise ValueError(f"{where}: expected a mapping of token, user and (optional) groups")
            token, user, groups = entry.get("token"), entry.get("user"), entry.get("groups", [])
            if not isinstance(token, str) or len(token) < 16:
                raise ValueError(f"{where}.token: a string of at least 16 characters")
            if not isinstance(user, str) or not user or len(user) > 253:
                raise ValueError(f"{where}.user: a name of 1 to 253 characters")
            if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
                raise ValueError(f"{where}.groups: a list of names")
            digest = hashlib.sha256(token.encode()).digest()
            if digest in self._identities:
                raise ValueError(f"{where}.token: the same token is given twice")
            self._identities[digest] = Identity(user, tuple(groups))
        if not self._identities:
            raise ValueError("tokens: the list is empty")

    async def authenticate(self, token: str) -> Identity:
        # Compared by digest (a dictionary lookup of a hash is not a timing oracle for the token).
        identity = self._identities.get(hashlib.sha256(token.encode()).digest())
        if identity is None:
            raise Unauthenticated("the bearer token is not valid")
        return identity


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
