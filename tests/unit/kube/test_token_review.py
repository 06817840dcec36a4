"""TokenReview amplification (finding 10 of issue 13): strangers' tokens are rate limited and cannot
flush real workers out of the cache. The API server is a fake that counts the reviews it answers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest
from lightkube.models.authentication_v1 import TokenReviewStatus, UserInfo
from lightkube.resources.authentication_v1 import TokenReview

from cerebelum_operator.api import AuthUnavailable, Unauthenticated
from cerebelum_operator.kube.token_review import TokenReviewAuthenticator
from cerebelum_operator.runtime import FakeClock

WORKER_TOKEN = "the-worker's-projected-token"
WORKER = "system:serviceaccount:team-a:worker"


@dataclass
class FakeApiServer:
    """Answers TokenReviews: one known token, every other refused; counts reviews per token."""

    reviews: dict[str, int] = field(default_factory=dict)

    async def create(self, review: TokenReview) -> TokenReview:
        token = review.spec.token
        self.reviews[token] = self.reviews.get(token, 0) + 1
        if token == WORKER_TOKEN:
            status = TokenReviewStatus(
                authenticated=True,
                user=UserInfo(username=WORKER, groups=["system:serviceaccounts"]),
                audiences=["cerebelum"],
            )
        else:
            status = TokenReviewStatus(authenticated=False, error="invalid bearer token")
        return TokenReview(spec=review.spec, status=status)

    @property
    def total(self) -> int:
        return sum(self.reviews.values())


def authenticator(api: FakeApiServer, clock: FakeClock, **options: Any) -> TokenReviewAuthenticator:
    return TokenReviewAuthenticator(api, clock=clock, **options)  # type: ignore[arg-type]


async def try_random_tokens(auth: TokenReviewAuthenticator, count: int) -> tuple[int, list[str]]:
    """`count` random tokens: how many were refused as invalid, and the messages of the throttled ones."""
    refused, throttled = 0, []
    for _ in range(count):
        try:
            await auth.authenticate(secrets.token_urlsafe(24))
        except Unauthenticated:
            refused += 1
        except AuthUnavailable as error:
            throttled.append(str(error))
    return refused, throttled


async def test_three_hundred_random_tokens_cost_only_the_burst_in_token_reviews() -> None:
    api, clock = FakeApiServer(), FakeClock()
    auth = authenticator(api, clock, reviews_per_second=20, review_burst=50)

    refused, throttled = await try_random_tokens(auth, 300)

    assert api.total == 50
    assert refused == 50
    assert len(throttled) == 250
    assert "at most 20 TokenReviews per second (bursts of 50)" in throttled[0]


async def test_the_review_budget_refills_at_its_rate() -> None:
    api, clock = FakeApiServer(), FakeClock()
    auth = authenticator(api, clock, reviews_per_second=20, review_burst=50)
    await try_random_tokens(auth, 60)
    assert api.total == 50

    await clock.advance(0.5)
    refused, throttled = await try_random_tokens(auth, 20)

    assert (api.total, refused, len(throttled)) == (60, 10, 10)


async def test_random_tokens_cannot_flush_an_accepted_worker_out_of_the_cache() -> None:
    api, clock = FakeApiServer(), FakeClock()
    auth = authenticator(api, clock, max_accepted=8, max_refused=8, reviews_per_second=1_000, review_burst=1_000)
    assert (await auth.authenticate(WORKER_TOKEN)).username == WORKER

    refused, _ = await try_random_tokens(auth, 500)  # many times the cache's size
    assert refused == 500

    assert (await auth.authenticate(WORKER_TOKEN)).username == WORKER
    assert api.reviews[WORKER_TOKEN] == 1  # still answered from the cache


async def test_a_known_worker_is_re_reviewed_when_its_acceptance_expires_even_with_the_budget_spent() -> None:
    api, clock = FakeApiServer(), FakeClock()
    auth = authenticator(api, clock, reviews_per_second=1, review_burst=5)
    await auth.authenticate(WORKER_TOKEN)
    await clock.advance(61)  # past the acceptance's 60 s
    _, throttled = await try_random_tokens(auth, 20)
    assert throttled, "the flood should have spent the budget"

    assert (await auth.authenticate(WORKER_TOKEN)).username == WORKER
    assert api.reviews[WORKER_TOKEN] == 2


async def test_a_refused_token_presented_again_is_answered_from_the_cache() -> None:
    api, clock = FakeApiServer(), FakeClock()
    auth = authenticator(api, clock)
    for _ in range(10):
        with pytest.raises(Unauthenticated, match="invalid bearer token"):
            await auth.authenticate("not-a-token")
    assert api.reviews["not-a-token"] == 1


def test_a_review_budget_without_room_is_refused() -> None:
    with pytest.raises(ValueError, match="a rate > 0 and a burst >= 1"):
        authenticator(FakeApiServer(), FakeClock(), review_burst=0)
