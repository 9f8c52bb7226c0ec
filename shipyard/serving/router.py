"""Which model variant answers a request: forced header, then rules, then (sticky) weights."""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Value = str | int | float | bool
_BUCKETS = 10_000


class RouteRule(BaseModel):
    """Send requests whose row field (or header) matches a value to one variant."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    field: str | None = Field(None, description="A request row field to match.")
    header: str | None = Field(None, description="A request header to match (any case).")
    equals: Value | None = Field(None, description="Match when the value equals this.")
    in_: list[Value] | None = Field(
        None, alias="in", description="Match when the value is one of these."
    )
    variant: str = Field(description="The variant that answers matching requests.")

    @field_validator("header")
    @classmethod
    def _lower_header(cls, header: str | None) -> str | None:
        return header.lower() if header is not None else None

    @model_validator(mode="after")
    def _one_source_one_test(self) -> Self:
        if (self.field is None) == (self.header is None):
            raise ValueError(
                f"route rule for variant '{self.variant}' needs exactly one of 'field' or 'header'"
            )
        if ("equals" in self.model_fields_set) == (self.in_ is not None):
            raise ValueError(
                f"route rule for variant '{self.variant}' needs exactly one of 'equals' or 'in'"
            )
        return self


class RouterState(BaseModel):
    """The routing configuration of a service; changed at run time by building a new Router."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, float] = Field(description="Variant -> share of traffic (>= 0).")
    sticky_key: str | None = Field(
        None, description="Row field whose value keeps a caller on one variant."
    )
    rules: list[RouteRule] = Field(
        default_factory=list, description="Checked in order before weights; first match wins."
    )
    revision: int = Field(
        0, description="Counts the changes: the admin API sets it, audits it and returns it."
    )

    @field_validator("weights")
    @classmethod
    def _usable_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = [name for name, weight in weights.items() if not (0 <= weight < math.inf)]
        if bad:
            raise ValueError(f"weights of {', '.join(bad)} must be finite numbers >= 0")
        if not any(weight > 0 for weight in weights.values()):
            raise ValueError("at least one variant needs a weight > 0")
        return weights


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

    def __init__(self, state: RouterState, variants: Sequence[str], salt: str = "") -> None:
        """Compile the state for the given variants.

        Args:
            state: Weights, sticky key and rules.
            variants: The variants the service has; those missing from the weights get 0.
            salt: Mixed into sticky hashes (e.g. the service name) so that services split
                the same callers independently.

        Raises:
            UnknownVariant: The weights or a rule name a variant not in `variants`.
        """
        self._state = state.model_copy(deep=True)
        self._known = tuple(variants)
        self._known_set = frozenset(variants)
        self._salt = f"{salt}:"
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
    def state(self) -> RouterState:
        """A copy of the state this router was built from."""
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


def _as_header(value: Value) -> Value:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _same(value: Value) -> Value:
    return value
