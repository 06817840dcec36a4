"""Workers authenticate with their projected ServiceAccount token; the API server vouches for it.

Each token is sent once to a TokenReview with our audience (``cerebelum`` by default), so a
token minted for another audience (the pod's default API token, say) is refused. Answers are
cached for a short while, keyed by the token's hash, and concurrent checks of one token share a
single review: a thousand long-polls do not become a thousand API calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence

import httpx2
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.authentication_v1 import TokenReviewSpec
from lightkube.resources.authentication_v1 import TokenReview

from ..api import AuthUnavailable, Identity, Unauthenticated

__all__ = ["DEFAULT_AUDIENCE", "TokenReviewAuthenticator"]

log = logging.getLogger(__name__)

DEFAULT_AUDIENCE = "cerebelum"


class TokenReviewAuthenticator:
    def __init__(
        self,
        client: AsyncClient,
        *,
        audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
        accepted_ttl_s: float = 60.0,
        refused_ttl_s: float = 5.0,
        max_entries: int = 4096,
    ) -> None:
        self.client = client
        self.audiences = list(audiences)
        self.accepted_ttl_s = accepted_ttl_s
        self.refused_ttl_s = refused_ttl_s
        self.max_entries = max_entries
        self.reviews = 0  # TokenReviews sent, for tests and metrics
        self._cache: OrderedDict[str, tuple[float, Identity | str]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[Identity | str]] = {}

    async def authenticate(self, token: str) -> Identity:
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return _verdict(cached[1])
        pending = self._in_flight.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._in_flight[key] = pending
            try:
                outcome = await self._review(token)
            except Exception as error:
                pending.set_exception(error)
                pending.exception()  # retrieved: no "never retrieved" warning when nobody else waits
                raise
            except BaseException:
                pending.cancel()
                raise
            finally:
                del self._in_flight[key]
            ttl = self.accepted_ttl_s if isinstance(outcome, Identity) else self.refused_ttl_s
            self._remember(key, outcome, time.monotonic() + ttl)
            pending.set_result(outcome)
            return _verdict(outcome)
        return _verdict(await asyncio.shield(pending))

    async def _review(self, token: str) -> Identity | str:
        """The identity, or the reason the API server gave for refusing the token."""
        self.reviews += 1
        review = TokenReview(spec=TokenReviewSpec(token=token, audiences=self.audiences))
        try:
            answer = await self.client.create(review)
        except ApiError as error:
            raise AuthUnavailable(
                f"cannot review the worker's token: the API server answered {error.status.code}"
                f" ({error.status.message}); the operator needs 'create' on tokenreviews.authentication.k8s.io"
            ) from None
        except httpx2.HTTPError as error:
            raise AuthUnavailable(f"cannot review the worker's token: {error}") from None
        status = answer.status
        if status is None or not status.authenticated or status.user is None or not status.user.username:
            reason = (status.error if status is not None else None) or "the token is not valid"
            return f"token refused by the Kubernetes API: {reason} (audiences {self.audiences})"
        if status.audiences is not None and not set(status.audiences) & set(self.audiences):
            return f"token refused: it is for {status.audiences}, not {self.audiences}"
        return Identity(status.user.username, tuple(status.user.groups or ()))

    def _remember(self, key: str, outcome: Identity | str, expires_at: float) -> None:
        self._cache[key] = (expires_at, outcome)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)


def _verdict(outcome: Identity | str) -> Identity:
    if isinstance(outcome, Identity):
        return outcome
    raise Unauthenticated(outcome)
