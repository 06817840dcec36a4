"""Workers authenticate with their projected ServiceAccount token; the API server vouches for it.

Each token is sent once to a TokenReview with our audience (``cerebelum`` by default), so a
token minted for another audience (the pod's default API token, say) is refused. Answers are
cached for a short while, keyed by the token's hash, and concurrent checks of one token share a
single review: a thousand long-polls do not become a thousand API calls.

Anyone who reaches the port can present a token, so two limits keep strangers from costing us:
reviews of tokens we have never accepted are rate limited by a token bucket (`rate_limit`, on the
injected clock: beyond it the caller is told to retry; no review is sent), and acceptances and
refusals are cached apart, each bounded, so a flood of random tokens evicts only other refusals,
never a real worker's acceptance. A worker accepted before is re-reviewed when its acceptance
expires whatever the bucket holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import TypeVar

import httpx2
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.authentication_v1 import TokenReviewSpec
from lightkube.resources.authentication_v1 import TokenReview

from ..api import AuthUnavailable, Identity, Unauthenticated
from ..runtime import Clock, SystemClock
from .rate_limit import TokenBucket

__all__ = ["DEFAULT_AUDIENCE", "TokenReviewAuthenticator"]

log = logging.getLogger(__name__)

DEFAULT_AUDIENCE = "cerebelum"

V = TypeVar("V")


class TokenReviewAuthenticator:
    def __init__(
        self,
        client: AsyncClient,
        *,
        audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
        accepted_ttl_s: float = 60.0,
        refused_ttl_s: float = 5.0,
        max_accepted: int = 4096,
        max_refused: int = 4096,
        reviews_per_second: float = 20.0,
        review_burst: int = 100,
        clock: Clock | None = None,
    ) -> None:
        if max_accepted < 1 or max_refused < 1:
            raise ValueError(f"the token caches need room for one entry at least, not {max_accepted}/{max_refused}")
        self.client = client
        self.audiences = list(audiences)
        self.accepted_ttl_s = accepted_ttl_s
        self.refused_ttl_s = refused_ttl_s
        self.max_accepted = max_accepted
        self.max_refused = max_refused
        self._clock = clock or SystemClock()
        self.budget = TokenBucket(rate=reviews_per_second, burst=review_burst, clock=self._clock)
        self.reviews = 0  # TokenReviews sent, for tests and metrics
        self.throttled = 0  # reviews of unknown tokens refused by the budget
        # Expired acceptances stay (until evicted by newer ones): they mark a token as a known worker's.
        self._accepted: OrderedDict[str, tuple[float, Identity]] = OrderedDict()
        self._refused: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[Identity | str]] = {}

    async def authenticate(self, token: str) -> Identity:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock.now_s()
        accepted = self._accepted.get(key)
        if accepted is not None and accepted[0] > now:
            self._accepted.move_to_end(key)
            return accepted[1]
        refused = self._refused.get(key)
        if refused is not None and refused[0] > now:
            raise Unauthenticated(refused[1])
        pending = self._in_flight.get(key)
        if pending is not None:
            return _verdict(await asyncio.shield(pending))
        if accepted is None and not self.budget.try_take():
            self.throttled += 1
            raise AuthUnavailable(
                "too many unknown tokens to review: at most"
                f" {self.budget.rate:g} TokenReviews per second (bursts of {self.budget.burst});"
                " try again shortly"
            )
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
        self._remember(key, outcome)
        pending.set_result(outcome)
        return _verdict(outcome)

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

    def _remember(self, key: str, outcome: Identity | str) -> None:
        now = self._clock.now_s()
        if isinstance(outcome, Identity):
            self._refused.pop(key, None)
            _put(self._accepted, key, (now + self.accepted_ttl_s, outcome), self.max_accepted)
        else:
            self._accepted.pop(key, None)  # revoked: its next failure must cost from the budget
            _put(self._refused, key, (now + self.refused_ttl_s, outcome), self.max_refused)


def _put(cache: OrderedDict[str, V], key: str, value: V, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def _verdict(outcome: Identity | str) -> Identity:
    if isinstance(outcome, Identity):
        return outcome
    raise Unauthenticated(outcome)
