"""Which model variant answers a request: forced header, then rules, then (sticky) weights."""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.compiler.services import ExperimentPlan, RoutingPlan
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
        self._experiment = _Experiment(state.experiment, self._known_set)
        self.sole: str | None = (
            self._choices[0]
            if len(self._choices) == 1 and not self._rules and not self._experiment.active
            else None
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

    @property
    def experiment(self) -> str | None:
        """The A/B test in force, if any."""
        return self._experiment.name

    def unit(self, row: Mapping[str, Any]) -> str | None:
        """The A/B test's pseudonymous id of the row's caller (a hash of its key with the
        test's salt): what the prediction log keeps, so exposure is counted once per caller
        without writing the key itself (which masking may hide)."""
        if not self._experiment.active:
            return None
        key = row.get(self._experiment.key)
        return None if key is None else unit_id(self._experiment.test_salt, key)

    def choose(
        self, row: Mapping[str, Any], headers: Mapping[str, str], forced: str | None = None
    ) -> str:
        """The variant for one request (see `assign`)."""
        return self.assign(row, headers, forced)[0]

    def assign(
        self, row: Mapping[str, Any], headers: Mapping[str, str], forced: str | None = None
    ) -> tuple[str, bool]:
        """The variant for one request, and whether the A/B test in force assigned it.

        Args:
            row: The request row (field -> value).
            headers: Request headers with lower-case names, as ASGI servers give them.
            forced: The X-Shipyard-Variant header value; empty or None means not forced.

        Raises:
            UnknownVariant: `forced` is not a variant of this service.
        """
        if forced:
            if forced in self._known_set:
                return forced, False
            raise UnknownVariant(forced, self._known, "the X-Shipyard-Variant header")
        for from_header, name, membership, expected, variant in self._rules:
            value = headers.get(name) if from_header else row.get(name)
            if _matches(value, membership, expected):
                return variant, False
        if self._experiment.active:
            arm = self._experiment.arm(row)
            if arm is not None:
                return arm, True
        return self._weighted(row), False

    def _weighted(self, row: Mapping[str, Any]) -> str:
        if self._sticky_key is not None:
            sticky = row.get(self._sticky_key)
            if sticky is not None:
                draw = _draw(self._salt, sticky)
                return self._choices[bisect.bisect_right(self._thresholds, draw)]
        return self._choices[bisect.bisect_right(self._thresholds, random.random())]


class _Experiment:
    """An A/B test's split: its target admits a row, then the row's key picks an arm."""

    def __init__(self, plan: ExperimentPlan | None, known: frozenset[str]) -> None:
        self.name = plan.name if plan else None
        self.active = plan is not None and set(plan.arms) <= known and any(plan.arms.values())
        if plan is None or not self.active:
            return
        self.key = plan.assign_by
        self.test_salt = plan.salt
        self.salt = f"{plan.salt}:"
        target = plan.target
        self.field = target.field if target else None
        self.negate = target is not None and target.op in ("!=", "not in")
        self.values = frozenset(target.values) if target else frozenset()
        arms = [(name, share) for name, share in plan.arms.items() if share > 0]
        total = sum(share for _, share in arms)
        self.choices = tuple(name for name, _ in arms)
        running, thresholds = 0.0, []
        for _, share in arms:
            running += share / total
            thresholds.append(running)
        thresholds[-1] = 1.0
        self.thresholds = tuple(thresholds)

    def arm(self, row: Mapping[str, Any]) -> str | None:
        """The arm of a row the target admits and that carries the key; else None."""
        if self.field is not None:
            try:
                inside = row.get(self.field) in self.values
            except TypeError:  # an unhashable value is in no set of scalars
                inside = False
            if inside == self.negate:
                return None
        key = row.get(self.key)
        if key is None:
            return None
        return self.choices[bisect.bisect_right(self.thresholds, _draw(self.salt, key))]


def unit_id(salt: str, key: Any) -> str:
    """The pseudonymous caller id of an A/B test of salt `salt` (as compiled, e.g.
    `ab_test.churn-v2`); the analysis hashes feedback entities alike."""
    return hashlib.blake2b(f"unit:{salt}:{key}".encode(), digest_size=8).hexdigest()


def _draw(salt: str, key: Any) -> float:
    """A caller's place in [0, 1): the same for the same salt and key, independent across salts."""
    digest = hashlib.blake2b(f"{salt}{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") % _BUCKETS) / _BUCKETS


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
