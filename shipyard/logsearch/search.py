"""One log search: pick the sources a query needs, check access, read, redact, merge by time."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from shipyard.compiler import Plan, ServiceStep
from shipyard.diagnostics import did_you_mean
from shipyard.errors import ShipyardError
from shipyard.logsearch.access import AccessRefused, check_admin
from shipyard.logsearch.records import Entry, Query, Source, level_rank
from shipyard.logsearch.redact import Redactor
from shipyard.logsearch.sources import (
    read_flow_logs,
    read_json_lines,
    read_prediction_log,
)
from shipyard.secrets import redact_url
from shipyard.serving.crypto import reader_cipher
from shipyard.settings import StateLayout


@dataclass
class SearchResult:
    """The lines found (oldest first, at most the query's limit), and what was looked at.

    Attributes:
        entries: The most recent `limit` matching lines, oldest first.
        matched: How many lines matched in all (more than shown when the limit cut).
        searched: Each source read, in words ("service log of churn-api (/path)").
        unavailable: Sources that could not be read, each with why.
        refused: Services whose logs the caller may not read, each with how to get access.
    """

    entries: list[Entry] = field(default_factory=list)
    matched: int = 0
    searched: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    refused: list[AccessRefused] = field(default_factory=list)


@dataclass(frozen=True)
class _Source:
    name: str
    read: Callable[[], Iterable[Entry]]


def service_step(plan: Plan, name: str) -> ServiceStep:
    """The service `name`, or a ShipyardError naming every service the spec defines."""
    for step in plan.steps_of(ServiceStep):
        if step.service == name:
            return step
    names = [s.service for s in plan.steps_of(ServiceStep)]
    defined = f"defined: {', '.join(names)}" if names else "the spec defines no service"
    suggestion = did_you_mean(name, names)
    raise ShipyardError(
        f"service '{name}' is not defined in {plan.runtime.spec_file}",
        hint=f"{suggestion} ({defined})" if suggestion else defined,
    )


def search_logs(
    plan: Plan,
    query: Query,
    credential: str | None,
    redactor: Redactor,
    prefect_api: str | None,
    prefect_down: str | None = None,
) -> SearchResult:
    """Find the query's lines in every source it needs.

    Args:
        plan: The compiled plan: where the state folder, services and databases are.
        query: What to find.
        credential: The caller's API key or token, for services with `auth:`.
        redactor: Hides credentials in every line found.
        prefect_api: The Prefect API to read flow logs from; None when it does not answer.
        prefect_down: Why there is no Prefect API, for the result's `unavailable`.

    Raises:
        AccessRefused: The query names one service, and the caller may not read its logs.
        ShipyardError: The query names a service the plan does not define.
    """
    result = SearchResult()
    sources = _sources(plan, query, credential, prefect_api, prefect_down, result)
    lowest = level_rank(query.level)
    needle = query.grep.lower() if query.grep else None
    kept: list[tuple[float, int, Entry]] = []  # a heap of the most recent `limit`
    for order, entry in enumerate(_merged(sources, result)):
        if level_rank(entry.level) < lowest:
            continue
        entry = _redacted(entry, redactor)
        if needle is not None and needle not in entry.haystack():
            continue
        result.matched += 1
        item = (entry.time, order, entry)
        if len(kept) < query.limit:
            heapq.heappush(kept, item)
        else:
            heapq.heappushpop(kept, item)
    result.entries = [entry for _, _, entry in sorted(kept)]
    return result


def _sources(
    plan: Plan,
    query: Query,
    credential: str | None,
    prefect_api: str | None,
    prefect_down: str | None,
    result: SearchResult,
) -> list[_Source]:
    layout = StateLayout(plan.runtime.state_dir)
    shipyard_log = layout.logs / "shipyard.jsonl"
    sources: list[_Source] = []
    if query.flow_run is not None:
        flow_run = query.flow_run
        if prefect_api is None:
            result.unavailable.append(f"flow logs on Prefect: {prefect_down or 'no server'}")
        else:
            seen = _shipyard_lines(read_json_lines(shipyard_log, "shipyard", query))
            sources.append(
                _Source(
                    f"flow logs on Prefect ({prefect_api})",
                    partial(_new_lines, read_flow_logs(prefect_api, flow_run, query), seen),
                )
            )
    if query.service is None:
        sources.append(_file(shipyard_log, "shipyard", f"Shipyard's log ({shipyard_log})", query))
    if query.flow_run is not None:
        return sources
    steps = (
        [service_step(plan, query.service)]
        if query.service is not None
        else plan.steps_of(ServiceStep)
    )
    for step in steps:
        try:
            check_admin(step, credential)
        except AccessRefused as refused:
            if query.service is not None:
                raise
            result.refused.append(refused)
            continue
        log_file = layout.logs / f"service-{step.service}.log"
        sources.append(
            _file(log_file, "service", f"service log of {step.service} ({log_file})", query)
        )
        sources.append(
            _Source(
                f"prediction log of {step.service} ({redact_url(step.log_database)})",
                partial(
                    read_prediction_log,
                    step.log_database,
                    step.service,
                    query,
                    reader_cipher(step.log_encryption, step.service),
                ),
            )
        )
    return sources


DUPLICATE_SECONDS = 2.0
"""Shipyard's lines in a flow run reach Prefect's log too (PREFECT_LOGGING_EXTRA_LOGGERS);
a Prefect line with the logger and message of a Shipyard line this close is that line."""


def _shipyard_lines(entries: Iterable[Entry]) -> dict[tuple[str, str], list[float]]:
    seen: dict[tuple[str, str], list[float]] = {}
    for entry in entries:
        seen.setdefault((entry.logger, entry.message), []).append(entry.time)
    return seen


def _new_lines(
    entries: Iterable[Entry], seen: dict[tuple[str, str], list[float]]
) -> Iterator[Entry]:
    """The flow's lines without the copies of Shipyard's own (those carry more fields)."""
    for entry in entries:
        times = seen.get((entry.logger, entry.message), ())
        if not any(abs(entry.time - at) <= DUPLICATE_SECONDS for at in times):
            yield entry


def _file(path: Path, source: Source, name: str, query: Query) -> _Source:
    return _Source(name, partial(read_json_lines, path, source, query))


def _merged(sources: list[_Source], result: SearchResult) -> Iterator[Entry]:
    """Every source's lines in one stream by time, read lazily: each source is in time order
    (a log file nearly: workers append concurrently), so memory stays with the limit."""
    counter = itertools.count()  # ties keep the order the sources are listed in
    streams = [((e.time, next(counter), e) for e in _guarded(source, result)) for source in sources]
    for _, _, entry in heapq.merge(*streams):
        yield entry


def _guarded(source: _Source, result: SearchResult) -> Iterator[Entry]:
    """The source's lines; if it fails, it is noted as unavailable (with why) and ends, so one
    unreachable database does not hide the other sources."""
    result.searched.append(source.name)
    try:
        yield from source.read()
    except ShipyardError as exc:
        result.searched.remove(source.name)
        result.unavailable.append(f"{source.name}: {exc.message}")


def _redacted(entry: Entry, redactor: Redactor) -> Entry:
    return Entry(
        time=entry.time,
        source=entry.source,
        level=entry.level,
        logger=entry.logger,
        message=redactor.text(entry.message),
        fields=redactor.value(entry.fields),
    )
