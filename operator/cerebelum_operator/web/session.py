"""Who is looking: the caller's token (a header or the sign-in cookie), checked as gRPC checks it.

The browser keeps the token the user signed in with in an HttpOnly, SameSite=Strict cookie, and
every request is authenticated again through the engine's own authenticator (a static token in
`cerebelum dev`, TokenReview in the operator, which caches reviews): nothing is kept on the
server, so a restart or another replica signs nobody out, and a revoked token stops working
when the authenticator says so. The access policy's ``clients`` rules decide what the caller may
do: everything, read only (``readOnly: true``), or nothing.

Every form that acts carries a token derived from the caller's credential and a secret of this
process (HMAC), checked with the Origin header: a page of another site cannot make a signed-in
browser act, even on a loopback engine with no authentication at all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web

from ..api.auth import ANONYMOUS, Identity, PermissionDenied, Unauthenticated, bearer_token
from ..api.guard import Guard

__all__ = ["COOKIE", "Sessions", "Viewer"]

COOKIE = "cerebelum_token"
MAX_TOKEN = 8192  # a Kubernetes token is about 1 KB; a longer cookie is refused unread
SIGN_IN_SECONDS = 8 * 3600


@dataclass(frozen=True, slots=True)
class Viewer:
    identity: Identity
    may_act: bool
    csrf: str
    signed_in: bool  # by the cookie: the page offers to sign out

    @property
    def name(self) -> str:
        return self.identity.username

    @property
    def records_name(self) -> bool:
        """Whether an approval records this viewer's own name (else the form asks for one)."""
        return self.identity.authenticated and not self.identity.shared


class Sessions:
    def __init__(self, guard: Guard, *, secure_cookie: bool) -> None:
        self.guard = guard
        self.secure_cookie = secure_cookie
        self._secret = secrets.token_bytes(32)

    @property
    def required(self) -> bool:
        return self.guard.enabled

    def _credential(self, request: web.Request) -> tuple[str | None, bool]:
        header = request.headers.get("Authorization")
        if header is not None:
            return bearer_token([("authorization", header)]), False
        cookie = request.cookies.get(COOKIE)
        if cookie:
            if len(cookie) > MAX_TOKEN:
                raise Unauthenticated("the sign-in cookie is too long")
            return cookie, True
        return None, False

    async def viewer(self, request: web.Request) -> Viewer:
        """The caller; raises Unauthenticated (no or bad token) or PermissionDenied (no rule grants it)."""
        token, from_cookie = self._credential(request)
        if self.guard.authenticator is None:
            identity = ANONYMOUS
        elif token is None:
            raise Unauthenticated("sign in with a token")
        else:
            identity = await self.guard.authenticator.authenticate(token)
        access = self.guard.policy.client_access(identity)
        if access is None:
            raise PermissionDenied(f"{identity.username!r} may not use the UI (access policy 'clients')")
        return Viewer(identity, access == "act", self._csrf(token or ""), from_cookie)

    async def check_token(self, token: str) -> Identity:
        if self.guard.authenticator is None:
            return ANONYMOUS
        return await self.guard.authenticator.authenticate(token)

    def _csrf(self, credential: str) -> str:
        return hmac.new(self._secret, credential.encode(), hashlib.sha256).hexdigest()[:32]

    def check_form(self, request: web.Request, viewer: Viewer, form_token: str) -> None:
        """Refuse a form sent by another site: its Origin, and the form's token."""
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise PermissionDenied(f"a form from {origin!r} may not act here")
        if not hmac.compare_digest(form_token.encode(), viewer.csrf.encode()):
            raise PermissionDenied("the form is stale or from another site: reload the page and try again")
        if not viewer.may_act:
            raise PermissionDenied(f"{viewer.name!r} may read but not act (access policy: readOnly)")

    def sign_in(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(
            COOKIE,
            token,
            max_age=SIGN_IN_SECONDS,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.secure_cookie,
        )

    @staticmethod
    def sign_out(response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/")
