"""`shipyard alerts test ROUTE`, `shipyard alerts history` and `shipyard alerts receive`."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from shipyard.alerts.alert import Delivery
    from shipyard.compiler import Plan
    from shipyard.spec.alerts import Severity

EXIT_OK = 0
EXIT_FAILED = 1


def add_alerts_parser(
    add: Callable[..., argparse.ArgumentParser], command: Callable[[argparse.Namespace], int]
) -> None:
    """`alerts` with its actions; `command(args)` runs them (with a plan)."""
    alerts = add("alerts", lambda a: EXIT_OK, "alert routes: send a test alert, history, receive")
    actions = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    text = "send a test alert to every channel of a route now and show each delivery"
    p = actions.add_parser("test", help=text, description=text)
    p.add_argument("route", help="a route under `alerts:`")
    p.add_argument("--severity", choices=["info", "warning", "critical"], default="warning")
    text = "the delivery record, newest first: channel, alert key, firing/resolved, ok or error"
    p = actions.add_parser("history", help=text, description=text)
    p.add_argument("--route", help="only this route")
    p.add_argument("--key", help="only this alert key, e.g. monitor.churn-api/drift")
    p.add_argument("--limit", type=_positive, default=50, help="at most this many (default 50)")
    text = "run the Alertmanager webhook receiver (POST /alertmanager/<route>) until stopped"
    p = actions.add_parser("receive", help=text, description=text)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9095)
    for action in actions.choices.values():
        action.set_defaults(func=command)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive whole number")
    return int(text)


def alerts_command(plan: Plan, args: argparse.Namespace) -> int:
    if args.alerts_command == "test":
        return _test(plan, args.route, args.severity)
    if args.alerts_command == "history":
        from shipyard.alerts.engine import deliveries

        print(history_table(deliveries(plan, args.route, args.key, args.limit)))
        return EXIT_OK
    return _receive(plan, args.host, args.port)


def _test(plan: Plan, route: str, severity: str) -> int:
    import time

    from shipyard.alerts.engine import Alert, raise_alert

    alert = Alert(
        key=f"alert.{route}/test-{time.time_ns()}",  # a new key: never held back by a cooldown
        severity=cast("Severity", severity),  # argparse's choices are the severities
        title=f"Test alert from Shipyard ({plan.project})",
        body=f"`shipyard alerts test {route}` sent this to check that the route works.",
        source=f"alert.{route}",
    )
    sent = raise_alert(plan, [route], alert)
    if not sent:
        step_floor = _min_severity(plan, route)
        print(f"nothing sent: route '{route}' takes {step_floor} and above, not {severity}")
        return EXIT_FAILED
    for d in sent:
        print(f"{d.channel}: " + ("ok" if d.ok else f"failed: {d.error}"))
    return EXIT_OK if all(d.ok for d in sent) else EXIT_FAILED


def _min_severity(plan: Plan, route: str) -> str:
    from shipyard.compiler.alerts import AlertStep

    return plan.named(AlertStep, route).min_severity


def history_table(rows: Sequence[Delivery]) -> str:
    """The deliveries as an aligned table, for people."""
    if not rows:
        return "no deliveries recorded"
    lines = [("AT (UTC)", "ROUTE", "KEY", "STATUS", "CHANNEL", "RESULT")]
    for d in rows:
        at = datetime.fromtimestamp(d.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append((at, d.route, d.key, d.status, d.channel, "ok" if d.ok else str(d.error)))
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:5], widths, strict=True)) + "  " + line[5]
        for line in lines
    )


def _receive(plan: Plan, host: str, port: int) -> int:
    from shipyard.alerts.receiver import AlertReceiver

    server = AlertReceiver(plan, host, port)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    serving = threading.Thread(target=server.serve_forever, name="alert-receiver", daemon=True)
    serving.start()
    print(f"receiving Alertmanager webhooks at {server.url}/alertmanager/<route> (Ctrl-C stops)")
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        serving.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("alert receiver stopped")
    return EXIT_OK
