"""The Alertmanager webhook receiver: Prometheus alerts fanned out through Shipyard's routes.

Alertmanager points a `webhook_configs` entry at `http://HOST:PORT/alertmanager/<route>`; each
alert of a notification is raised on that route (or resolved) under the key
`alertmanager/<alertname>/<fingerprint>`, so Shipyard's de-duplication, cooldown and delivery
record apply to it like to any other alert. `GET /-/healthy` answers 200 for probes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shipyard.alerts.alert import Alert, Delivery
from shipyard.alerts.engine import AlertEngine
from shipyard.compiler.plan import Plan
from shipyard.errors import ShipyardError
from shipyard.spec.alerts import SEVERITIES, Severity

log = logging.getLogger("shipyard.alerts.receiver")
PREFIX = "/alertmanager/"
MAX_BODY = 4 * 1024 * 1024
"""A notification larger than this is refused (Alertmanager batches a few hundred alerts)."""


class BadNotification(ValueError):
    """The body is not an Alertmanager webhook notification."""


def handle_notification(engine: AlertEngine, route: str, notification: Any) -> list[Delivery]:
    """Raise or resolve each alert of an Alertmanager notification on `route`.

    Raises:
        BadNotification: It is not Alertmanager's webhook JSON (version 4).
        ShipyardError: The route is not defined, or the control database is unreachable.
    """
    if not isinstance(notification, dict) or not isinstance(notification.get("alerts"), list):
        raise BadNotification("expected Alertmanager's webhook JSON: an object with 'alerts'")
    engine.route(route)
    sent: list[Delivery] = []
    for item in notification["alerts"]:
        if not isinstance(item, dict) or not isinstance(item.get("labels", {}), dict):
            raise BadNotification("each alert must be an object with 'labels'")
        alert = _alert(item)
        if item.get("status") == "resolved":
            description = str((item.get("annotations") or {}).get("description", ""))
            sent += engine.resolve_alert([route], alert.key, description)
        else:
            sent += engine.raise_alert([route], alert)
    return sent


def _alert(item: dict[str, Any]) -> Alert:
    labels = {str(k): str(v) for k, v in item.get("labels", {}).items()}
    annotations = {str(k): str(v) for k, v in (item.get("annotations") or {}).items()}
    name = labels.get("alertname", "alert")
    fingerprint = str(item.get("fingerprint") or _fingerprint(labels))
    severity = labels.get("severity", "warning")
    body = annotations.get("description") or annotations.get("summary") or name
    if item.get("generatorURL"):
        body += f"\n{item['generatorURL']}"
    return Alert(
        key=f"alertmanager/{name}/{fingerprint}",
        severity=_severity(severity),
        title=annotations.get("summary") or name,
        body=body,
        source="alertmanager",
        labels=labels,
    )


def _severity(label: str) -> Severity:
    for severity in SEVERITIES:
        if label.lower() == severity:
            return severity
    return "warning"


def _fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager always sends one; a hand-made payload gets one from its labels."""
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


class AlertReceiver(ThreadingHTTPServer):
    """The receiver's HTTP server; `serve_forever()` until `shutdown()`."""

    daemon_threads = True

    def __init__(self, plan: Plan, host: str = "127.0.0.1", port: int = 9095) -> None:
        self.engine = AlertEngine(plan)
        self.lock = threading.Lock()  # one notification at a time: sends stay in order
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: AlertReceiver
    server_version = "shipyard-alerts"

    def do_GET(self) -> None:
        if self.path == "/-/healthy":
            self._answer(HTTPStatus.OK, {"status": "healthy"})
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no page {self.path}", "GET /-/healthy")

    def do_POST(self) -> None:
        if not self.path.startswith(PREFIX) or "/" in self.path[len(PREFIX) :].strip("/"):
            self._error(
                HTTPStatus.NOT_FOUND,
                f"no receiver at {self.path}",
                "point Alertmanager's webhook_configs url at /alertmanager/<route>",
            )
            return
        route = self.path[len(PREFIX) :].strip("/")
        try:
            self.server.engine.route(route)
        except ShipyardError as exc:
            self._error(HTTPStatus.NOT_FOUND, exc.message, exc.hint)
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if length > MAX_BODY:
                raise BadNotification(f"the body is larger than {MAX_BODY} bytes")
            notification = json.loads(self.rfile.read(length) or b"null")
            with self.server.lock:
                sent = handle_notification(self.server.engine, route, notification)
        except (ValueError, BadNotification) as exc:  # json.JSONDecodeError is a ValueError
            self._error(
                HTTPStatus.BAD_REQUEST,
                f"not an Alertmanager notification: {exc}",
                "POST Alertmanager's webhook JSON (version 4) with Content-Type application/json",
            )
            return
        except ShipyardError as exc:  # the control database: Alertmanager retries on 5xx
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, exc.message, exc.hint)
            return
        self._answer(
            HTTPStatus.OK,
            {
                "route": route,
                "alerts": len(notification["alerts"]),
                "deliveries": len(sent),
                "failed": [d.error for d in sent if not d.ok],
            },
        )

    def _error(self, status: HTTPStatus, message: str, hint: str | None) -> None:
        self._answer(status, {"error": message, "hint": hint})

    def _answer(self, status: HTTPStatus, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s " + format, self.address_string(), *args)
