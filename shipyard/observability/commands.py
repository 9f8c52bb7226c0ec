"""`shipyard observability render|up|down|status`: the parser and the command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.project import Project

Add = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def add_observability_parser(add: Add, func: Callable[[argparse.Namespace], int]) -> None:
    """Register `shipyard observability ACTION` (imports nothing heavy)."""
    parser = add(
        "observability", func, "the Prometheus stack compiled from the spec: render, up, down"
    )
    sub = parser.add_subparsers(dest="observability_command", required=True, metavar="ACTION")
    render = sub.add_parser(
        "render",
        help="write prometheus.yml, rules, alertmanager.yml and Grafana provisioning",
    )
    render.add_argument("-o", "--output", default="obs", help="folder to write (default: obs/)")
    sub.add_parser("up", help="start Prometheus, Pushgateway, Alertmanager, node-exporter")
    sub.add_parser("down", help="stop the stack's processes")
    sub.add_parser("status", help="each process of the stack with its URL and health")


def observability_command(project: Project, action: str, output: str | None = None) -> int:
    """Run ACTION on the stack of the project's plan and its profile's `observability:`."""
    from shipyard.spec.profiles import ObservabilitySettings

    plan = project.require_plan()
    spec = project.spec
    settings = spec.active_profile.observability if spec else ObservabilitySettings()
    if action == "render":
        from shipyard.observability.render import check_stack, render_stack

        target = Path(output or "obs")
        rendered = render_stack(plan, settings, target)
        written = rendered.write(target)
        missing = check_stack(target, rendered)
        checked = (
            f"not checked: {', '.join(missing)} not installed"
            if missing
            else "checked with promtool and amtool"
        )
        print(f"wrote {len(written)} files to {target}/ ({checked})")
        return 0
    from shipyard.observability import stack

    if action == "up":
        for line in stack.up(plan, settings):
            print(line)
        return 0
    if action == "down":
        for line in stack.down(plan, settings):
            print(line)
        return 0
    found = stack.status(plan, settings)
    for status in found:
        print(status.line())
    if not all(s.ready for s in found):
        print("start it with `shipyard observability up`", file=sys.stderr)
        return 1
    return 0
