"""`shipyard logs`: every line of a request, a flow run or a service, from every log, by time.

Read-only: it starts no server. A Prefect server that does not answer makes the flow logs
unavailable (said so), and the other sources are still searched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.compiler import Plan
    from shipyard.logsearch.records import Query
    from shipyard.logsearch.redact import Redactor

EXIT_OK, EXIT_NO_MATCH = 0, 1
DEFAULT_LIMIT = 1000
_LEVELS = ("debug", "info", "warning", "error", "critical")


def add_logs_parser(
    add: Callable[..., argparse.ArgumentParser], command: Callable[[argparse.Namespace], int]
) -> None:
    """`logs` and its options; `command(args)` runs the search (with a plan)."""
    p = add(
        "logs",
        command,
        "every line of a request, a flow run or a service: flow, Shipyard, service, "
        "prediction and feedback logs merged by time",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--request-id", metavar="ID", help="a request's id (X-Request-ID)")
    what.add_argument("--flow-run", metavar="ID", help="a Prefect flow run id")
    what.add_argument("--service", metavar="NAME", help="a service under `services:`")
    p.add_argument("--since", metavar="DURATION", help="only the last 30m, 2h, 1d, ...")
    p.add_argument(
        "--level", choices=_LEVELS, default="debug", help="the lowest level shown (default: all)"
    )
    p.add_argument("--grep", metavar="TEXT", help="only lines containing TEXT (any case)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument(
        "--limit",
        type=_positive,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"the most recent N lines (default {DEFAULT_LIMIT})",
    )
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help="for services with `auth:`, a key (or token) with the admin role "
        "(default: $SHIPYARD_API_KEY)",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive whole number")
    return value


def logs_command(plan: Plan, args: argparse.Namespace) -> int:
    """Search, print the lines (text or JSON lines) on stdout and what was not searched on
    stderr; 0 when something matched, 1 when nothing did (saying which sources were read)."""
    from shipyard.logsearch.access import API_KEY_ENV
    from shipyard.logsearch.search import search_logs, service_step

    query = _query(args)
    if query.service is not None:
        service_step(plan, query.service)  # an unknown service before any reading
    if query.flow_run is not None:
        from shipyard.logsearch.sources import flow_run_uuid

        flow_run_uuid(query.flow_run)  # a malformed id before any reading
    prefect_api, prefect_down = _prefect(plan) if query.flow_run is not None else (None, None)
    credential = args.api_key or os.environ.get(API_KEY_ENV)
    redactor = _redactor(plan, prefect_api is not None)
    result = search_logs(plan, query, credential, redactor, prefect_api, prefect_down)
    for entry in result.entries:
        if args.format == "json":
            print(json.dumps(entry.to_json(), default=str, ensure_ascii=False))
        else:
            print(entry.text())
    for why in result.unavailable:
        print(f"note: not searched: {why}", file=sys.stderr)
    for refused in result.refused:
        print(refused.render().replace("error: ", "note: not searched: ", 1), file=sys.stderr)
    if result.matched > len(result.entries):
        print(
            f"note: showing the last {len(result.entries)} of {result.matched} lines "
            "(raise --limit, or narrow with --since, --level or --grep)",
            file=sys.stderr,
        )
    if result.matched:
        return EXIT_OK
    searched = "; ".join(result.searched) or "nothing (see the notes above)"
    print(f"no lines match {_described(query)}; searched: {searched}", file=sys.stderr)
    return EXIT_NO_MATCH


def _query(args: argparse.Namespace) -> Query:
    from shipyard.logsearch.records import Query
    from shipyard.spec import parse_duration
    from shipyard.spec.base import DurationError

    since = None
    if args.since is not None:
        try:
            since = time.time() - parse_duration(args.since)
        except DurationError as exc:
            raise ShipyardError(
                f"--since {exc.problem}", hint="give a number and a unit, e.g. 30m, 2h, 1d"
            ) from None
    return Query(
        request_id=args.request_id,
        flow_run=args.flow_run,
        service=args.service,
        since=since,
        level=args.level,
        grep=args.grep,
        limit=args.limit,
    )


def _described(query: Query) -> str:
    what = (
        f"request {query.request_id}"
        if query.request_id is not None
        else f"flow run {query.flow_run}"
        if query.flow_run is not None
        else f"service {query.service}"
    )
    narrowed = [
        f"level >= {query.level}" if query.level != "debug" else "",
        f"containing '{query.grep}'" if query.grep else "",
        "in the --since window" if query.since is not None else "",
    ]
    return " ".join([what, *(n for n in narrowed if n)])


def _prefect(plan: Plan) -> tuple[str | None, str | None]:
    """The plan's Prefect API if it answers, else None and why (no server is started)."""
    from shipyard.processes import http_ok

    api = plan.prefect.api_url
    if http_ok(api.rstrip("/") + "/health"):
        # secrets in Prefect Secret blocks are then found as flows find them
        os.environ.setdefault("PREFECT_API_URL", api)
        return api, None
    start = (
        "start it with `shipyard server start`"
        if plan.prefect.local
        else "check `prefect.api_url` in the profile"
    )
    return None, f"the Prefect server at {api} does not answer ({start})"


def _redactor(plan: Plan, with_prefect: bool) -> Redactor:
    """Hides the value of every secret the plan references, as far as it is known here."""
    from shipyard.logsearch.redact import Redactor

    values = []
    for name in plan.secrets:
        value = _secret(name, with_prefect)
        if value is None:
            print(
                f"note: secret '{name}' is not set here, so its value cannot be hidden from the "
                "lines shown (URL passwords and auth headers still are)",
                file=sys.stderr,
            )
        else:
            values.append(value)
    return Redactor(values)


def _secret(name: str, with_prefect: bool) -> str | None:
    """A secret's value from the environment, else its Prefect Secret block; None if unknown."""
    from shipyard.secrets import secret_value

    try:
        return secret_value(name, use_prefect=False)
    except ShipyardError:
        if not with_prefect:
            return None
    try:
        return secret_value(name, use_prefect=True)
    except Exception:  # not set there either, or Prefect failed: the value stays unknown
        return None
