"""Hyper-parameter search spaces -> concrete trials (grid or seeded random)."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from shipyard.compiler.models import Distribution, SearchPlan, SearchValue

MAX_GRID = 1000


def trial_params(search: SearchPlan, seed: int) -> list[dict[str, Any]]:
    """Every combination (grid) or `trials` seeded draws (random) from the declared space."""
    space = search.space
    names = sorted(space)
    if search.strategy == "grid":
        grid = [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(_values(space[n]) for n in names))
        ]
        if len(grid) > MAX_GRID:
            raise ValueError(
                f"the grid has {len(grid)} combinations (limit {MAX_GRID}); "
                "use strategy: random with `trials:`"
            )
        return grid
    rng = random.Random(seed)
    trials: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    attempts = 0
    while len(trials) < search.trials and attempts < search.trials * 20:
        attempts += 1
        params = {name: _draw(space[name], rng) for name in names}
        key = tuple(params[n] for n in names)
        if key in seen:
            continue  # a small discrete space may hold fewer distinct points than `trials`
        seen.add(key)
        trials.append(params)
    return trials


def _values(space: list[SearchValue] | Distribution) -> list[SearchValue]:
    if isinstance(space, Distribution):  # validation allows distributions in random search only
        raise ValueError("grid search needs a list of values, not a distribution")
    return space


def _draw(space: list[SearchValue] | Distribution, rng: random.Random) -> Any:
    if isinstance(space, list):
        return rng.choice(space)
    low, high = space.low, space.high
    if space.distribution == "uniform":
        return round(rng.uniform(low, high), 6)
    if space.distribution == "loguniform":
        return round(math.exp(rng.uniform(math.log(low), math.log(high))), 6)
    return rng.randint(int(low), int(high))
