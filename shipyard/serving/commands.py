"""`shipyard build <service>` and `shipyard serve <service>`."""

from __future__ import annotations

from shipyard.compiler import Plan, ServiceStep
from shipyard.compiler.features import repo_step

EXIT_OK = 0


def service_step(plan: Plan, name: str) -> ServiceStep:
    return plan.named(ServiceStep, name)


def _prefect_for_secrets(plan: Plan) -> None:
    """Let secret references resolve from Prefect Secret blocks when the server is up."""
    import os

    from shipyard.processes import http_ok

    if not os.environ.get("PREFECT_API_URL") and http_ok(plan.prefect.api_url + "/health"):
        os.environ["PREFECT_API_URL"] = plan.prefect.api_url


def _tracking(plan: Plan) -> str:
    return plan.blocks.mlflow.tracking_uri


def build_command(plan: Plan, name: str, deploy_after: bool) -> int:
    from shipyard.serving.build import build_service
    from shipyard.serving.deploy import deploy

    step = service_step(plan, name)
    built = build_service(step, repo_step(plan.steps), _tracking(plan))
    print(built.summary())
    print(f"  bundle  {built.bundle}")
    if deploy_after:
        _prefect_for_secrets(plan)
        print(deploy(step, built))
    return EXIT_OK


def serve_command(plan: Plan, name: str, action: str) -> int:
    from shipyard.serving import deploy

    step = service_step(plan, name)
    url = deploy.base_url(step)
    if action == "stop":
        stopped = deploy.stop(step)
        print(f"service '{name}' " + ("stopped" if stopped else "was not running"))
        return EXIT_OK
    if action == "status":
        info = deploy.info(step)
        pid = deploy.process(step).pid()
        if info is None:
            print(f"service '{name}': not answering at {url}" + (f" (pid {pid})" if pid else ""))
            return 1
        print(f"service '{name}': serving {info['bento']} at {url} (pid {pid})")
        for variant in info["variants"]:
            print(
                f"  {variant['name']:<12} {variant['model']} v{variant['version']} "
                f"{variant['semver']:<8} weight {variant['weight']:g}"
            )
        _print_control(step, info)
        return EXIT_OK
    from shipyard.serving.build import build_service

    _prefect_for_secrets(plan)
    if action == "restart":
        deploy.stop(step)
    built = build_service(step, repo_step(plan.steps), _tracking(plan), say=deploy.shown)
    print(built.summary())
    print(deploy.deploy(step, built))
    print(deploy.describe(step, url))
    return EXIT_OK


def _print_control(step: ServiceStep, info: dict[str, object]) -> None:
    """The control state's last changes, and whether this worker lags behind it."""
    from shipyard.serving.control import ControlStore

    store = ControlStore(step.control_database)
    try:
        history = store.history(step.service, limit=3)
    finally:
        store.close()
    if not history:
        return
    latest = history[0]
    served = info.get("revision")
    print(
        f"  control revision {latest.revision} ({store.shown})"
        + ("" if served == latest.revision else f"; this worker serves revision {served}")
    )
    for change in history:
        print(
            f"    r{change.revision} {change.changed_at} {change.action} by {change.actor}: "
            f"{change.reason}"
        )
    if info.get("reload_error"):
        print(f"  not applied: {info['reload_error']}")
