"""Who was in an A/B test, in which arm, and with what outcome: read from the service's logs.

The prediction log holds, for every prediction the test assigned, the test's name and the
caller's unit id (a hash of its `assign_by` key with the test's salt; `shipyard/serving/router.py`).
The feedback log holds outcomes, by the prediction's request id or by entity. Both are read as
streams of rows (a cursor, a few thousand rows at a time): memory grows with the callers in the
test, never with the log. A caller counts once, in the arm it was first assigned to, with all
its outcomes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.serving.predlog import LogReader
from shipyard.serving.router import unit_id

if TYPE_CHECKING:
    from shipyard.serving.crypto import FieldCipher


@dataclass
class ArmCounts:
    """One arm's callers: how many were assigned, and per caller with an outcome its value,
    its predictions (a ratio metric's denominator) and its covariate (CUPED; NaN if unknown)."""

    units: int = 0
    values: list[float] = field(default_factory=list)
    requests: list[float] = field(default_factory=list)
    covariates: list[float] = field(default_factory=list)

    @property
    def measured(self) -> int:
        """Callers with at least one usable outcome: the ones the metric is computed on."""
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return math.fsum(self.values) / len(self.values) if self.values else None

    @property
    def sd(self) -> float | None:
        if len(self.values) < 2:
            return None
        mean = math.fsum(self.values) / len(self.values)
        variance = math.fsum((v - mean) ** 2 for v in self.values) / (len(self.values) - 1)
        return math.sqrt(variance)


@dataclass
class Exposures:
    """The test's callers by arm (service variant), and when each entered."""

    arms: dict[str, ArmCounts] = field(default_factory=dict)
    entered: list[tuple[float, str]] = field(default_factory=list)
    """(time of first exposure, variant) per caller, for the cumulative-exposure plot."""
    switched: int = 0
    """Callers later served by another arm (the allocation changed): counted in their first."""
    unusable_outcomes: int = 0
    """Outcomes that are neither numbers nor booleans."""


@dataclass
class _Unit:
    variant: str
    values: list[float] = field(default_factory=list)
    requests: int = 0
    covariate: float | None = None


def read_exposures(
    url: str,
    service: str,
    experiment: str,
    salt: str,
    assign_by: str,
    since: float,
    metric_type: str,
    covariate: str | None = None,
    cipher: FieldCipher | None = None,
) -> Exposures:
    """Join the test's predictions since `since` with their outcomes, caller by caller.

    Raises:
        ServiceUnavailable: The log database cannot be read.
    """
    log = LogReader(url, cipher)  # the covariate may be an encrypted input field
    exposures = Exposures()
    outcomes, by_entity = _outcomes(log, service, since, salt, assign_by, exposures)
    units: dict[str, _Unit] = {}
    columns = "request_id, time, variant, output" + (", inputs" if covariate else "")
    sql = (
        f"SELECT {columns} FROM predictions WHERE service = {{p}} AND time >= {{p}} "
        f"AND output LIKE {{p}} ORDER BY time"
    )
    marker = f'%"experiment"%{json.dumps(experiment)}%'
    for row in log.stream(sql, [service, since, marker]):
        request_id, at, variant, output = row[:4]
        decoded = json.loads(output)
        for position, index, caller in _assigned(decoded, experiment):
            found = units.get(caller)
            if found is None:
                found = units[caller] = _Unit(variant)
                exposures.entered.append((float(at), variant))
                if covariate:
                    found.covariate = _covariate(json.loads(row[4]), index, covariate)
            elif found.variant != variant:
                exposures.switched += 1
            found.requests += 1
            # feedback names a request, or one row of a batch as `<request id>/<position>`
            found.values += outcomes.get(request_id, [])
            if position is not None:
                found.values += outcomes.get(f"{request_id}/{position}", [])
    for entity_unit, values in by_entity.items():
        if entity_unit in units:
            units[entity_unit].values += values
    for unit in units.values():
        counts = exposures.arms.setdefault(unit.variant, ArmCounts())
        counts.units += 1
        if not unit.values:
            continue
        counts.values.append(_value(unit.values, metric_type))
        counts.requests.append(float(unit.requests))
        counts.covariates.append(math.nan if unit.covariate is None else unit.covariate)
    return exposures


def _value(values: list[float], metric_type: str) -> float:
    """A caller's metric: any positive outcome (binary), the mean (continuous), the sum (ratio,
    divided by its requests in the analysis)."""
    if metric_type == "binary":
        return 1.0 if any(v > 0 for v in values) else 0.0
    if metric_type == "ratio":
        return math.fsum(values)
    return math.fsum(values) / len(values)


def _assigned(output: dict[str, Any], experiment: str) -> Iterator[tuple[int | None, int, str]]:
    """(position in the request or None, index in the record, unit id) of each row of a record
    that the test assigned (a batch record holds one variant's rows of a request)."""
    names, units = output.get("experiment"), output.get("unit")
    if isinstance(names, list) and isinstance(units, list):
        positions = output.get("row") or list(range(len(names)))
        for index, (position, name, unit) in enumerate(zip(positions, names, units, strict=False)):
            if name == experiment and isinstance(unit, str):
                yield int(position), index, unit
    elif names == experiment and isinstance(units, str):
        yield None, 0, units


def _covariate(inputs: dict[str, Any], index: int, name: str) -> float | None:
    """The covariate of the record's `index`-th row (a batch record is columnar)."""
    row = inputs
    if isinstance(inputs.get("rows"), list):
        masked = set(inputs.get("masked") or ())
        shown = [c for c in inputs.get("columns") or [] if c not in masked]
        rows = inputs["rows"]
        row = dict(zip(shown, rows[index], strict=False)) if index < len(rows) else {}
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _outcomes(
    log: LogReader, service: str, since: float, salt: str, assign_by: str, exposures: Exposures
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Feedback since `since`: outcomes by request id, and by the unit id of their entity."""
    by_request: dict[str, list[float]] = {}
    by_entity: dict[str, list[float]] = {}
    sql = "SELECT request_id, entity, outcome FROM feedback WHERE service = {p} AND time >= {p}"
    for request_id, entity, outcome in log.stream(sql, [service, since]):
        value = json.loads(outcome)
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float) or not math.isfinite(value):
            exposures.unusable_outcomes += 1
            continue
        if request_id:
            by_request.setdefault(request_id, []).append(float(value))
        elif entity:
            key = json.loads(entity).get(assign_by)
            if key is not None:
                by_entity.setdefault(unit_id(salt, key), []).append(float(value))
    return by_request, by_entity
