"""Retries with exponential back-off and jitter for calls to remote services (tenacity)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

T = TypeVar("T")
log = logging.getLogger("shipyard.retry")


def retrying(
    call: Callable[[], T],
    what: str,
    retry_on: tuple[type[BaseException], ...] = (OSError,),
    attempts: int = 4,
    max_wait: float = 8.0,
) -> T:
    """Call, retrying on the given exceptions with back-off; the last exception propagates."""
    retryer = Retrying(
        retry=retry_if_exception_type(retry_on),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.5, max=max_wait),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    log.debug("calling %s", what)
    return retryer(call)
