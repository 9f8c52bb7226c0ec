"""What is applied on the Prefect server, read over its REST API.

No Prefect import: `shipyard plan` compares the plan with the server in a fraction of a
second. Authentication follows Prefect's own settings (PREFECT_API_KEY as a bearer token,
PREFECT_API_AUTH_STRING for basic auth).
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from shipyard.compiler.diff import AppliedDeployment
from shipyard.compiler.plan import SCHEMA_VERSION, Plan
from shipyard.compiler.profiles import plan_block_name
from shipyard.errors import ServiceUnavailable, ShipyardError


@dataclass
class AppliedState:
    """The project's deployments on the server, and the plan last applied there."""

    api_url: str
    deployments: dict[str, AppliedDeployment] = field(default_factory=dict)
    plan: Plan | None = None
    applied_at: str | None = None
    applied_by: str | None = None
    note: str | None = None
    """Why the applied plan could not be read, when it could not."""


def read_applied(plan: Plan, timeout: float = 5.0) -> AppliedState:
    """The server's view of the plan's project; ServiceUnavailable when it does not answer."""
    api = _Api(plan.prefect.api_url, timeout)
    state = AppliedState(plan.prefect.api_url)
    found = api.post(
        "/deployments/filter",
        {"deployments": {"tags": {"all_": [f"project:{plan.project}"]}}, "limit": 200},
    )
    flow_ids = sorted({d["flow_id"] for d in found})
    flows = (
        {
            f["id"]: f["name"]
            for f in api.post("/flows/filter", {"flows": {"id": {"any_": flow_ids}}})
        }
        if flow_ids
        else {}
    )
    for deployment in found:
        name = f"{flows.get(deployment['flow_id'], '?')}/{deployment['name']}"
        schedules = tuple(
            str(s["schedule"].get("cron"))
            for s in deployment.get("schedules") or []
            if isinstance(s.get("schedule"), dict) and s["schedule"].get("cron")
        )
        state.deployments[name] = AppliedDeployment(name, deployment.get("version"), schedules)
    block = api.get(
        f"/block_types/slug/shipyard-plan/block_documents/name/"
        f"{urllib.parse.quote(plan_block_name(plan.project, plan.profile))}"
    )
    if block is None:
        return state
    data = block.get("data") or {}
    if data.get("schema_version") != SCHEMA_VERSION:
        state.note = (
            f"the applied plan has schema version {data.get('schema_version')}; this Shipyard "
            f"reads {SCHEMA_VERSION}: changed fields are not shown"
        )
        return state
    try:
        state.plan = Plan.model_validate(data["plan"])
    except (KeyError, ValueError) as exc:
        state.note = f"the applied plan could not be read ({exc}): changed fields are not shown"
    state.applied_at, state.applied_by = data.get("applied_at"), data.get("applied_by")
    return state


class _Api:
    def __init__(self, base: str, timeout: float) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key := os.environ.get("PREFECT_API_KEY"):
            self.headers["Authorization"] = f"Bearer {key}"
        elif auth := os.environ.get("PREFECT_API_AUTH_STRING"):
            self.headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call(path, json.dumps(body).encode(), "POST")

    def get(self, path: str) -> Any:
        return self._call(path, None, "GET")

    def _call(self, path: str, data: bytes | None, method: str) -> Any:
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=self.headers
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout
            ) as response:  # the profile's Prefect API URL  # nosec B310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and method == "GET":
                return None
            raise ShipyardError(
                f"the Prefect server at {self.base} answered {exc.code} to {method} {path}",
                hint="check the server's log and that this Shipyard's Prefect version matches it",
            ) from None
        except (OSError, ValueError) as exc:
            raise ServiceUnavailable(
                f"the Prefect server at {self.base} is not reachable ({exc})",
                hint="start it with `shipyard server start` (or check `prefect.api_url`)",
            ) from None
