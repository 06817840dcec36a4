"""TokenReview amplification against the real API server (finding 10 of issue 13).

Three hundred random tokens used to cost three hundred TokenReviews and could push a real
worker's acceptance out of the cache. Now the reviews of unknown tokens stop at the budget, and
the worker is still answered from the cache.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from lightkube import AsyncClient, KubeConfig

from cerebelum_operator.api import AuthUnavailable, Unauthenticated
from cerebelum_operator.kube.token_review import TokenReviewAuthenticator
from tests.kube.test_worker_auth import mint_token
from tests.support.control_plane import ControlPlane
from tests.support.kube import service_account_kubeconfig

pytestmark = [pytest.mark.kube]


async def test_three_hundred_random_tokens_cost_at_most_the_review_burst_and_keep_the_worker_cached(
    control_plane: ControlPlane, operator_rbac: None, namespace: str, tmp_path: Path
) -> None:
    good = mint_token(control_plane, namespace, "worker", audience="cerebelum")
    kubeconfig = service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig")
    client = AsyncClient(config=KubeConfig.from_file(kubeconfig))
    # A rate no refill can matter at during the test: the burst is the whole budget.
    authenticator = TokenReviewAuthenticator(client, review_burst=20, reviews_per_second=0.001, max_refused=16)
    try:
        worker = await authenticator.authenticate(good)
        refused, throttled = 0, []
        for _ in range(300):
            try:
                await authenticator.authenticate(secrets.token_urlsafe(32))
            except Unauthenticated:
                refused += 1
            except AuthUnavailable as error:
                throttled.append(str(error))
        assert authenticator.reviews == 20  # the worker's, then 19 strangers': the burst
        assert (refused, len(throttled)) == (19, 281)
        assert "at most 0.001 TokenReviews per second (bursts of 20)" in throttled[0]
        assert await authenticator.authenticate(good) == worker
        assert authenticator.reviews == 20  # from the cache: the flood evicted only refusals
    finally:
        await client.close()
