"""Bounded exponential backoff with jitter around one provider call.

429, 5xx, timeouts, dropped connections and malformed replies are retried up to ``max_retries`` times
(honouring ``Retry-After`` up to the cap); auth, bad-request and unknown-model errors fail at once. When
retries run out the failure is re-raised, still classified, so the run ends with a clear ``stopped_by``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from .base import ProviderFailure

T = TypeVar("T")


def with_retries(
    fn: Callable[[], T],
    *,
    max_retries: int,
    base_delay_s: float = 0.5,
    max_delay_s: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, ProviderFailure, float], None] = lambda n, e, d: None,
    rng: random.Random | None = None,
) -> T:
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            return fn()
        except ProviderFailure as exc:
            if not exc.retryable or attempt >= max_retries:
                raise
            delay = min(max_delay_s, base_delay_s * (2**attempt)) * (0.5 + rng.random() / 2)
            if exc.retry_after is not None:
                delay = min(max_delay_s, max(delay, exc.retry_after))
            attempt += 1
            on_retry(attempt, exc, delay)
            sleep(delay)
