"""Which rows a model was held out on, recorded so that a later comparison is honest.

A champion compared with a candidate must be scored only on rows neither of them trained on.
Re-cutting a seeded random split over data that changed does not give that: removing a few rows
moves almost every row to the other side, so the champion would be scored partly on its own
training rows (and look better than it is). So the holdout is a rule about a row, not about
the whole frame:

- `by: hash`: a row is held out when a stable hash of its identity (the dataset's key columns;
  without a key, its feature and target values) falls below `test_size`. Adding or removing
  other rows never moves it.
- `by: time`: the newest rows are held out; the rule records the last event time trained on,
  so any later row is one the model has never seen.

The rule goes onto the registered version (tag `shipyard.holdout`), and `held_out` answers,
for the rows of a later holdout, which ones this model did not train on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

TAG = "shipyard.holdout"
_SCALE = float(2**64)


@dataclass(frozen=True)
class Holdout:
    """A model's holdout rule.

    Attributes:
        by: `hash` (a row's stable hash against `test_size`) or `time` (rows after `until`).
        columns: The columns the hash reads (by hash), or the event-time column (by time).
        test_size: The share of rows held out.
        seed: Salts the hash, so another seed holds out other rows.
        until: By time, the last event time trained on (ISO 8601).
        trained: By hash, the places of rows moved into training although they hash below
            `test_size` (so that every class is trained on): never counted as held out.
    """

    by: Literal["hash", "time"]
    columns: list[str] = field(default_factory=list)
    test_size: float = 0.2
    seed: int = 0
    until: str | None = None
    trained: list[float] = field(default_factory=list)

    def to_tag(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_tag(cls, text: str | None) -> Holdout | None:
        """The rule a version was tagged with; None for versions registered before it was
        recorded, or a tag that is not one."""
        if not text:
            return None
        try:
            found = json.loads(text)
            rule = cls(**found)
        except (TypeError, ValueError):
            return None
        return rule if rule.by in ("hash", "time") else None

    def held_out(self, rows: pd.DataFrame) -> npt.NDArray[np.bool_] | None:
        """For each row, whether this rule kept it out of training; None when the rows lack
        the columns the rule reads (so it cannot tell)."""
        import numpy as np
        import pandas as pd

        if any(c not in rows.columns for c in self.columns):
            return None
        if self.by == "time":
            assert self.until is not None
            times = _utc(rows[self.columns[0]])
            return np.asarray(times > pd.Timestamp(self.until), dtype=bool)
        place = buckets(rows, self.columns, self.seed)
        return np.asarray((place < self.test_size) & ~np.isin(place, self.trained), dtype=bool)

    def describe(self) -> str:
        if self.by == "time":
            return f"rows after {self.until}"
        return f"hash of {', '.join(self.columns)}, seed {self.seed}, {self.test_size:g} held out"


def identity_columns(
    frame: pd.DataFrame, key: list[str], features: list[str], target: str
) -> list[str]:
    """What identifies a row: the dataset's key columns when the frame has them all, else its
    feature and target values."""
    if key and all(c in frame.columns for c in key):
        return list(key)
    return [*dict.fromkeys([*features, target])]


def buckets(rows: pd.DataFrame, columns: list[str], seed: int) -> npt.NDArray[np.float64]:
    """Each row's place in [0, 1), from a hash of its values in `columns` salted by `seed`:
    the same row gets the same place in any frame (pandas' stable `hash_pandas_object`)."""
    import numpy as np
    import pandas as pd

    values = pd.DataFrame({c: _hashable(rows[c]) for c in columns}, index=rows.index)
    # pandas' hash_key salts strings only; a seed column salts every type
    values["\0seed"] = seed
    hashed = pd.util.hash_pandas_object(values, index=False)
    return np.asarray(hashed.to_numpy(dtype=np.uint64), dtype=np.float64) / _SCALE


def split_by_hash(
    frame: pd.DataFrame,
    columns: list[str],
    test_size: float,
    seed: int,
    classes: Any = None,
) -> tuple[npt.NDArray[np.bool_], Holdout]:
    """Which rows of `frame` are held out, by hash. Given the label column as `classes`, every
    class with two rows or more has at least one row on each side (a few rows of a rare class
    could otherwise all hash to one side); that adjustment is the only thing that depends on
    the other rows."""
    import numpy as np
    import pandas as pd

    place = buckets(frame, columns, seed)
    held = place < test_size
    trained: list[float] = []
    groups = (
        [np.ones(len(frame), dtype=bool)]
        if classes is None
        else [np.asarray(classes == c) for c in pd.unique(np.asarray(classes, dtype=object))]
    )
    for members in groups:
        index = np.flatnonzero(members)
        if len(index) < 2:
            continue
        if not held[index].any():
            held[index[np.argmin(place[index])]] = True
        elif held[index].all():
            moved = index[np.argmax(place[index])]
            held[moved] = False
            trained.append(float(place[moved]))
    return held, Holdout("hash", columns, test_size, seed, trained=trained)


def time_rule(train_times: pd.Series, column: str, test_size: float) -> Holdout:
    """The rule of a time split: rows after the last event time trained on."""
    last = _utc(train_times).max()
    return Holdout("time", [column], test_size, until=last.isoformat())


def comparable_rows(
    champion: Holdout | None, candidate: Holdout, rows: pd.DataFrame
) -> tuple[npt.NDArray[np.bool_], str]:
    """Of the candidate's holdout rows, those the champion did not train on either, and how
    they were chosen (for the gate table)."""
    import numpy as np

    every = np.ones(len(rows), dtype=bool)
    if champion is None:
        return every, (
            "the champion records no holdout (registered before holdouts were recorded), so "
            "it may have trained on some of these rows"
        )
    mask = champion.held_out(rows)
    if mask is None:
        return every, (
            f"the champion's holdout ({champion.describe()}) reads columns these rows lack, so "
            "it may have trained on some of them"
        )
    if champion.by == candidate.by == "hash" and (
        champion.columns,
        champion.seed,
        champion.test_size,
    ) == (candidate.columns, candidate.seed, candidate.test_size):
        return mask, f"the champion's holdout rule too ({champion.describe()})"
    return mask, f"rows the champion held out too ({champion.describe()})"


def _utc(times: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.to_datetime(times, utc=True)


def _hashable(column: pd.Series) -> pd.Series:
    """A column in a form whose hash does not depend on how it was read: event times as UTC
    nanoseconds (a file may give them naive, the feature store tz-aware), categories as
    their values."""
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.astype(object)
    if pd.api.types.is_datetime64_any_dtype(column):
        return pd.to_datetime(column, utc=True).astype("int64")
    return column
