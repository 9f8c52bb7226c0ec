"""Rules for `alerts:`: each channel is an apprise URL or a secret, and every route that a
monitor, rollout or A/B test names is declared."""

from __future__ import annotations

import re
from collections.abc import Iterator

from shipyard.diagnostics import Diagnostic, did_you_mean, one_of
from shipyard.loader.source_map import SourceMap
from shipyard.spec import PipelineSpec

_CHANNEL = re.compile(r"^([a-z][a-z0-9+.-]*://\S+|\$\{secret:[A-Za-z0-9_.-]+\}\S*)$")
SENDERS = ("monitoring", "rollouts", "ab_tests")
"""Sections whose entries name alert routes in an `alerts:` list."""


def check_alerts(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    for name, route in spec.alerts.items():
        for index, channel in enumerate(route.channels):
            if not _CHANNEL.match(channel.strip()):
                yield Diagnostic(
                    "E1001",
                    f"alert route '{name}': channel '{channel}' is not an apprise URL",
                    sm.value_span(("alerts", name, "channels", index)),
                    "write a URL with a scheme, e.g. mailto://ops@example.com, "
                    "json://127.0.0.1:9000/hook or slack://..., or ${secret:NAME} for one kept "
                    "in a Prefect Secret block",
                )
    for section in SENDERS:
        for entry_name, entry in getattr(spec, section).items():
            for index, route in enumerate(entry.alerts):
                if route in spec.alerts:
                    continue
                yield Diagnostic(
                    "E1002",
                    f"{section}.{entry_name} sends alerts to route '{route}', which is not "
                    "defined under `alerts:`",
                    sm.value_span((section, entry_name, "alerts", index)),
                    did_you_mean(route, spec.alerts)
                    or (
                        one_of(sorted(spec.alerts))
                        if spec.alerts
                        else f"declare it: `alerts: {{{route}: {{channels: "
                        '["mailto://ops@example.com"]}}`'
                    ),
                )
