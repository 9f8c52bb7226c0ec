"""Which model variant answers a request: forced header, then rules, then (sticky) weights."""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.compiler.services import RoutingPlan
from shipyard.spec.services import RouteRule, RouteValue

_BUCKETS = 10_000


class UnknownVariant(ValueError):
    """A variant name that the service does not have."""

    def __init__(self, name: str, known: Sequence[str], where: str) -> None:
        super().__init__(
            f"{where} names variant '{name}', which this service does not have; "
            f"the variants are: {', '.join(known)}"
        )
        self.variant = name


class Router:
    """Chooses the variant for each request; immutable.

    Thresholds and rules are compiled once here. To change routing at run time, build a new
    Router from the new state and swap the reference the service holds: a request in flight
    keeps the Router it started with, and no lock is needed.
    """

    def __init__(self, state: RoutingPlan, variants: Sequence[str]) -> None:
        """Compile the routing for the given variants.

        Args:
            state: Weights, sticky key, rules, and the salt of sticky hashes (a service,
                rollout or experiment of its own splits the same callers independently).
            variants: The variants the service has; those missing from the weights get 0.

        Raises:
            UnknownVariant: The weights or a rule name a variant not in `variants`.
            ValueError: No variant of the service has a weight above 0.
        """
        self._state = state.model_copy(deep=True)  # the caller's dicts may change later
        self._known = tuple(variants)
        self._known_set = frozenset(variants)
        self._salt = f"{state.salt}:"
        self._sticky_key = state.sticky_key
        for name in state.weights:
            if name not in self._known_set:
                raise UnknownVariant(name, self._known, "the router weights")
        for number, rule in enumerate(state.rules, 1):
            if rule.variant not in self._known_set:
                raise UnknownVariant(rule.variant, self._known, f"route rule {number}")
        self._rules = tuple(_compile(rule) for rule in state.rules)
        # Variants with weight 0 are left out so that no bucket or random draw can reach them.
        chosen = [(name, state.weights[name]) for name in self._known if state.weights.get(name)]
        if not chosen:
            raise ValueError("at least one variant needs a weight above 0")
        total = sum(weight for _, weight in chosen)
        self._choices = tuple(name for name, _ in chosen)
        cumulative, running = [], 0.0
        for _, weight in chosen:
            running += weight / total
            cumulative.append(running)
        cumulative[-1] = 1.0  # rounding must not leave a gap below 1
        self._thresholds = tuple(cumulative)
        self.sole: str | None = (
            self._choices[0] if len(self._choices) == 1 and not self._rules else None
        )
        """The one variant every unforced request goes to, when no choice is left to make."""

    @property
    def state(self) -> RoutingPlan:
        """A copy of the routing this router was built from."""
        return self._state.model_copy(deep=True)

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants the service has."""
        return self._known

    def choose(
        self, row: Mapping[str, Any], headers: Mapping[str, str], forced: str | None = None
    ) -> str:
        """The variant for one request.

        Args:
            row: The request row (field -> value).
            headers: Request headers with lower-case names, as ASGI servers give them.
            forced: The X-Shipyard-Variant header value; empty or None means not forced.

        Raises:
            UnknownVariant: `forced` is not a variant of this service.
        """
        if forced:
            if forced in self._known_set:
                return forced
            raise UnknownVariant(forced, self._known, "the X-Shipyard-Variant header")
        for from_header, name, membership, expected, variant in self._rules:
            value = headers.get(name) if from_header else row.get(name)
            if _matches(value, membership, expected):
                return variant
        if self._sticky_key is not None:
            sticky = row.get(self._sticky_key)
            if sticky is not None:
                digest = hashlib.blake2b(f"{self._salt}{sticky}".encode(), digest_size=8).digest()
                draw = (int.from_bytes(digest, "big") % _BUCKETS) / _BUCKETS
                return self._choices[bisect.bisect_right(self._thresholds, draw)]
        return self._choices[bisect.bisect_right(self._thresholds, random.random())]


# (from a header?, field or header name, membership test?, expected value or set, variant)
_Compiled = tuple[bool, str, bool, Any, str]


def _compile(rule: RouteRule) -> _Compiled:
    from_header = rule.header is not None
    name = rule.header if rule.header is not None else rule.field
    assert name is not None
    # Header values are strings, so header rules compare with the expected values as strings.
    text = _as_header if from_header else _same
    if rule.in_ is not None:
        return from_header, name, True, frozenset(text(value) for value in rule.in_), rule.variant
    expected = None if rule.equals is None else text(rule.equals)
    return from_header, name, False, expected, rule.variant


def _matches(value: Any, membership: bool, expected: Any) -> bool:
    if not membership:
        return bool(value == expected)
    try:
        return value in expected
    except TypeError:  # an unhashable row value (a list or dict) is in no set of scalars
        return False


def _as_header(value: RouteValue) -> RouteValue:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _same(value: RouteValue) -> RouteValue:
    return value
