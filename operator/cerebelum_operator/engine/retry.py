"""Backoff between attempts, with jitter that is deterministic so `decide` stays pure."""

from __future__ import annotations

import hashlib
import math

from ..model import Retry

__all__ = ["backoff_ms"]


def backoff_ms(policy: Retry, *, failed_attempt: int, seed: str) -> int:
    """Delay before the attempt after `failed_attempt`: initial * coefficient^(n-1), capped, jittered."""
    try:
        growth = policy.backoff_coefficient ** max(failed_attempt - 1, 0)
    except OverflowError:  # 3.0 ** 1000: the cap applies long before
        growth = math.inf
    base = policy.initial_interval_ms * growth if policy.initial_interval_ms else 0.0
    capped = min(base, float(policy.max_interval_ms))
    if policy.jitter <= 0:
        return int(capped)
    digest = hashlib.blake2b(seed.encode(), digest_size=8).digest()
    unit = int.from_bytes(digest, "big") / 2**64
    return max(0, int(capped * (1 + policy.jitter * (2 * unit - 1))))
