"""The window: the last `window` of a service's prediction log, read as a stream.

Rows arrive a few thousand at a time (`LogReader`); a batch record is exploded into its rows. Per
monitored feature the window keeps its values (memory grows with the window, never with the
log), per variant the model's outputs, and per request the output that feedback labels are later
joined to.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from shipyard.serving.crypto import ENCRYPTED
from shipyard.serving.masking import MASK
from shipyard.serving.predlog import BATCH, LogReader

if TYPE_CHECKING:
    from shipyard.serving.crypto import FieldCipher


@dataclass
class Scored:
    """One prediction, kept to be judged against its label."""

    variant: str
    prediction: Any
    probability: float | None
    experiment: bool = False
    """Served inside an A/B test: its feedback is the test's business outcome, not a label."""


@dataclass
class Window:
    """What the monitor judges: `rows` predictions between `start` and `end` (unix times)."""

    start: float
    end: float
    rows: int = 0
    columns: dict[str, list[Any]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    """Monitored features that at least one row carried (the others are missing from live
    data: not logged, masked, or renamed)."""
    masked: set[str] = field(default_factory=set)
    outputs: dict[str, list[Any]] = field(default_factory=dict)
    """Variant -> the model output compared with the reference (see `output_of`)."""
    versions: dict[str, set[int]] = field(default_factory=dict)
    scored: dict[str, Scored] = field(default_factory=dict)
    """Request id (`<id>/<position>` inside a batch) -> the prediction made."""
    labels: dict[str, Any] = field(default_factory=dict)
    """Request id -> its label, from feedback."""

    def frame_columns(self) -> dict[str, list[Any]]:
        return {name: values for name, values in self.columns.items() if name in self.seen}


def read_window(
    url: str,
    service: str,
    features: Iterable[str],
    seconds: float,
    numeric_output: bool,
    now: float | None = None,
    cipher: FieldCipher | None = None,
) -> Window:
    """The service's predictions of the last `seconds`, and the feedback given on them.

    Raises:
        ServiceUnavailable: The log database cannot be read.
    """
    end = time.time() if now is None else now
    window = Window(start=end - seconds, end=end)
    names = list(features)
    window.columns = {name: [] for name in names}
    reader = LogReader(url, cipher)  # encrypted features are read as their values
    sql = (
        "SELECT request_id, variant, model_version, inputs, output FROM predictions "
        "WHERE service = {p} AND time >= {p} AND time < {p} ORDER BY time"
    )
    for request_id, variant, version, inputs, output in reader.stream(
        sql, [service, window.start, end]
    ):
        decoded_inputs, decoded_output = orjson.loads(inputs), orjson.loads(output)
        window.versions.setdefault(variant, set()).add(int(version))
        outputs = window.outputs.setdefault(variant, [])
        for key, row, prediction, probability, tested in _rows(
            request_id, decoded_inputs, decoded_output
        ):
            window.rows += 1
            for name in names:
                value = row.get(name, _ABSENT)
                if value is _ABSENT:
                    window.columns[name].append(None)
                    continue
                if value == MASK or (isinstance(value, str) and value.startswith(ENCRYPTED)):
                    window.masked.add(name)  # masked, or encrypted and no key here to read it
                    value = None
                window.seen.add(name)
                window.columns[name].append(value)
            outputs.append(
                probability if numeric_output and probability is not None else prediction
            )
            window.scored[key] = Scored(variant, prediction, probability, tested)
    feedback = "SELECT request_id, outcome FROM feedback WHERE service = {p} AND time >= {p}"
    for request_id, outcome in reader.stream(feedback, [service, window.start]):
        if request_id and request_id in window.scored:
            window.labels[request_id] = orjson.loads(outcome)
    return window


_ABSENT = object()


def _rows(
    request_id: str, inputs: Any, output: Any
) -> Iterable[tuple[str, dict[str, Any], Any, float | None, bool]]:
    """(request key, input row, prediction, probability, in an A/B test) of each row of one log
    record."""
    if isinstance(inputs, dict) and inputs.get(BATCH) == 1 and isinstance(output, dict):
        columns = inputs.get("columns") or []
        masked = set(inputs.get("masked") or ())
        shown = [c for c in columns if c not in masked]
        predictions = output.get("prediction") or []
        probabilities = output.get("probability") or [None] * len(predictions)
        experiments = output.get("experiment") or [None] * len(predictions)
        for n, (position, values) in enumerate(
            zip(output.get("row") or [], inputs.get("rows") or [], strict=False)
        ):
            row: dict[str, Any] = dict(zip(shown, values, strict=False))
            row.update({c: MASK for c in masked})
            yield (
                f"{request_id}/{position}",
                row,
                predictions[n] if n < len(predictions) else None,
                _probability(probabilities[n] if n < len(probabilities) else None),
                n < len(experiments) and experiments[n] is not None,
            )
        return
    if isinstance(inputs, dict) and isinstance(output, dict):
        yield (
            request_id,
            inputs,
            output.get("prediction"),
            _probability(output.get("probability")),
            output.get("experiment") is not None,
        )


def _probability(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
