"""The `shipyard` command: thin commands over load -> validate -> compile -> run.

Exit codes: 0 ok, 1 spec or user error (with a message naming the fix), 2 internal error.
Heavy libraries (prefect, dvc, great_expectations) are imported only by the commands that run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import ShipyardError, SpecError

if TYPE_CHECKING:
    from shipyard.compiler import Plan
    from shipyard.compiler.diff import PlanDiff
    from shipyard.project import Project

EXIT_OK, EXIT_SPEC, EXIT_INTERNAL = 0, 1, 2
STACK = ("prefect", "mlflow", "bentoml", "feast", "great-expectations", "dvc")
"""The libraries `shipyard --version` reports beside its own version."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error a user error (exit 1): exit 2 means Shipyard failed."""

    def error(self, message: str) -> typing.NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_SPEC, f"{self.prog}: error: {message}\n")


class _Versions(argparse.Action):
    """`--version`: looked up only when asked for (the metadata of seven packages)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: typing.Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: typing.Any) -> None:
        print(_versions())
        parser.exit(EXIT_OK)


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    stack = ", ".join(f"{name} {of(name)}" for name in STACK)
    return f"shipyard {of('shipyard')} ({stack}; Python {sys.version.split()[0]})"


def _project(args: argparse.Namespace, compile: bool = True) -> Project:
    from shipyard.project import load_project

    return load_project(args.file, compile=compile)


def load_plan(args: argparse.Namespace, quiet_warnings: bool = False) -> Plan:
    """Load, validate and compile, or raise SpecError with every diagnostic rendered."""
    project = _project(args)
    plan = project.require_plan()
    if project.diagnostics and not quiet_warnings:
        print(project.render(), file=sys.stderr)
    return plan


# -- commands -------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    project = _project(args, compile=False)
    if args.format == "json":
        print(project.render("json"))
    elif project.diagnostics:
        print(project.render(), file=sys.stderr)
    if not project.ok:
        return EXIT_SPEC
    if args.format == "text":
        print(f"{project.loaded.display_name}: ok ({_counts(project)})")
    return EXIT_OK


def _counts(project: Project) -> str:
    counts = project.counts()
    return ", ".join(f"{n} {noun}{'s' if n != 1 else ''}" for noun, n in counts.items()) or "empty"


def cmd_plan(args: argparse.Namespace) -> int:
    from shipyard.compiler.render import render_plan

    plan = load_plan(args)
    if args.output:
        from shipyard.compiler.plan import write_plan

        write_plan(plan, Path(args.output))
        print(
            f"wrote {args.output} (plan {plan.spec_digest[:12]}, schema {plan.schema_version})",
            file=sys.stderr,
        )
    diff = None if args.offline else _diff(plan)
    if args.json:
        data = json.loads(plan.model_dump_json())
        if diff is not None:
            data["changes"] = diff.to_json()
        print(json.dumps(data, indent=2))
    elif not args.output:
        print(render_plan(plan))
    if diff is not None and not args.json:
        print("\n" + diff.render(plan.prefect.api_url))
    _warn_changed_feature_services(plan)
    return EXIT_OK


def _diff(plan: Plan) -> PlanDiff | None:
    """The plan against the server, or None (with a note) when the server does not answer."""
    from shipyard.compiler.diff import diff_plan
    from shipyard.errors import ServiceUnavailable
    from shipyard.runtime.applied import read_applied

    try:
        applied = read_applied(plan)
    except ServiceUnavailable as exc:
        print(f"note: not compared with what is applied: {exc.message}", file=sys.stderr)
        return None
    if applied.note:
        print(f"note: {applied.note}", file=sys.stderr)
    return diff_plan(plan, applied.deployments, applied.plan)


def _warn_changed_feature_services(plan: Plan) -> None:
    from shipyard.compiler import FeatureRepoStep
    from shipyard.compiler.features import REPO_ID

    repo = plan.steps.get(REPO_ID)
    if not isinstance(repo, FeatureRepoStep):
        return
    from shipyard.features.repo import changed_services

    for name in changed_services(repo):
        print(
            f"warning[W601] feature service '{name}' changed since it was applied: models "
            f"pinned to it would silently train on different features\n"
            f"  = hint: keep '{name}' as it was and declare the change as a new version "
            "(e.g. _v3)",
            file=sys.stderr,
        )


def cmd_schema(args: argparse.Namespace) -> int:
    if args.format == "markdown":
        from shipyard.spec.reference import spec_reference_markdown

        text = spec_reference_markdown()
    else:
        from shipyard.spec.schema import spec_json_schema

        text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_apply(args: argparse.Namespace) -> int:
    from shipyard.runtime.apply import apply_plan

    plan = load_plan(args)
    if args.plan:
        from shipyard.compiler.plan import read_plan

        plan = _same_spec(read_plan(Path(args.plan)), plan, args.plan)
    apply_plan(plan)
    return EXIT_OK


def _same_spec(written: Plan, now: Plan, path: str) -> Plan:
    """A plan file is applied exactly, but only while the spec still compiles to it."""
    if written.runtime.project_dir != now.runtime.project_dir:
        raise ShipyardError(
            f"'{path}' is a plan of the project in {written.runtime.project_dir}, not of "
            f"{now.runtime.project_dir}",
            hint="write the plan of this project: `shipyard plan -o FILE`",
        )
    if (written.project, written.profile) != (now.project, now.profile):
        raise ShipyardError(
            f"'{path}' is a plan of project {written.project} (profile {written.profile}); "
            f"{now.runtime.spec_file} is project {now.project} (profile {now.profile})",
            hint="apply it with the spec it was written from, or write a new one",
        )
    if written.spec_digest != now.spec_digest:
        raise ShipyardError(
            f"'{path}' was written from spec {written.spec_digest[:12]}, but "
            f"{now.runtime.spec_file} now compiles to {now.spec_digest[:12]}: it is stale",
            hint=f"review the change, then write it again: `shipyard plan -o {path}`",
        )
    return written


def cmd_run(args: argparse.Namespace) -> int:
    from shipyard.runtime.run import run_deployment_now

    plan = load_plan(args)
    return run_deployment_now(plan, args.flow, args.name, force=args.force, on_worker=args.worker)


def cmd_server(args: argparse.Namespace) -> int:
    from shipyard.runtime import server

    plan = load_plan(args, quiet_warnings=True)
    return server.command(plan, args.action)


def cmd_worker(args: argparse.Namespace) -> int:
    from shipyard.runtime import worker

    plan = load_plan(args, quiet_warnings=True)
    return worker.command(plan, args.action, run_once=getattr(args, "once", False))


def cmd_mlflow(args: argparse.Namespace) -> int:
    from shipyard.runtime import mlflow_server

    plan = load_plan(args, quiet_warnings=True)
    return mlflow_server.command(plan, args.action)


def cmd_models_list(args: argparse.Namespace) -> int:
    from shipyard.training.commands import list_models

    plan = load_plan(args, quiet_warnings=True)
    return list_models(plan, args.json)


def cmd_models_show(args: argparse.Namespace) -> int:
    from shipyard.training.commands import show_model

    plan = load_plan(args, quiet_warnings=True)
    return show_model(plan, args.model, args.json)


def cmd_models_promote(args: argparse.Namespace) -> int:
    from shipyard.training.commands import promote_model

    plan = load_plan(args, quiet_warnings=True)
    return promote_model(plan, args.model, args.version, args.reason)


def cmd_models_repair(args: argparse.Namespace) -> int:
    from shipyard.processes import owner_gone
    from shipyard.training.commands import repair_models

    plan = load_plan(args, quiet_warnings=True)
    return repair_models(plan, args.model, owner_gone)


def cmd_features(args: argparse.Namespace) -> int:
    from shipyard.features import commands

    plan = load_plan(args, quiet_warnings=True)
    if args.features_command == "plan":
        return commands.plan_command(plan)
    if args.features_command == "apply":
        return commands.apply_command(plan)
    return commands.get_command(plan, args.service, args.keys)


def cmd_build(args: argparse.Namespace) -> int:
    from shipyard.serving.commands import build_command

    plan = load_plan(args, quiet_warnings=True)
    return build_command(plan, args.service, deploy_after=args.deploy)


def cmd_rollout(args: argparse.Namespace) -> int:
    from shipyard.rollouts.commands import rollout_command
    from shipyard.runtime.run import run_deployment_now

    plan = load_plan(args, quiet_warnings=True)
    return rollout_command(
        plan,
        args.rollout_command,
        args.rollout,
        lambda name: run_deployment_now(plan, "roll-out", name),
        getattr(args, "reason", None),
    )


def cmd_abtest(args: argparse.Namespace) -> int:
    from shipyard.abtests.commands import abtest_command

    plan = load_plan(args, quiet_warnings=True)
    return abtest_command(plan, args)


def cmd_backup(args: argparse.Namespace) -> int:
    from shipyard.backup.commands import backup_command

    plan = load_plan(args, quiet_warnings=True)
    return backup_command(plan, args)


def cmd_logs(args: argparse.Namespace) -> int:
    from shipyard.logsearch.commands import logs_command

    plan = load_plan(args, quiet_warnings=True)
    return logs_command(plan, args)


def cmd_keys(args: argparse.Namespace) -> int:
    from shipyard.serving.keycommands import keys_command

    plan = load_plan(args, quiet_warnings=True)
    return keys_command(plan, args)


def cmd_alerts(args: argparse.Namespace) -> int:
    from shipyard.alerts.commands import alerts_command

    plan = load_plan(args, quiet_warnings=True)
    return alerts_command(plan, args)


def cmd_ci(args: argparse.Namespace) -> int:
    from shipyard.cicd.commands import ci_command

    plan = None if args.ci_command == "plan-diff" else load_plan(args, quiet_warnings=True)
    return ci_command(plan, args)


def cmd_observability(args: argparse.Namespace) -> int:
    from shipyard.observability.commands import observability_command

    return observability_command(
        _project(args), args.observability_command, getattr(args, "output", None)
    )


def cmd_monitor(args: argparse.Namespace) -> int:
    from shipyard.monitoring.commands import monitor_command
    from shipyard.runtime.run import run_deployment_now

    plan = load_plan(args, quiet_warnings=True)
    return monitor_command(
        plan,
        args.service,
        lambda name: run_deployment_now(plan, "monitor-service", name),
        history=args.history,
    )


def cmd_k8s_render(args: argparse.Namespace) -> int:
    from shipyard.k8s.commands import render_command

    plan = load_plan(args, quiet_warnings=True)
    return render_command(plan, args.name, Path(args.output))


def cmd_serve(args: argparse.Namespace) -> int:
    from shipyard.serving.commands import serve_command

    plan = load_plan(args, quiet_warnings=True)
    action = (
        "stop" if args.stop else "status" if args.status else "restart" if args.restart else "start"
    )
    return serve_command(plan, args.service, action)


def cmd_env(args: argparse.Namespace) -> int:
    from shipyard.runtime.server import environment_for

    plan = load_plan(args, quiet_warnings=True)
    for key, value in sorted(environment_for(plan).items()):
        print(f"export {key}={_shell_quote(value)}")
    return EXIT_OK


def cmd_data_versions(args: argparse.Namespace) -> int:
    from shipyard.data.versioning import print_versions

    plan = load_plan(args, quiet_warnings=True)
    return print_versions(plan, args.dataset, as_json=args.json)


def cmd_data_restore(args: argparse.Namespace) -> int:
    from shipyard.data.versioning import restore_command

    plan = load_plan(args, quiet_warnings=True)
    return restore_command(plan, args.dataset, args.version)


def cmd_promote(args: argparse.Namespace) -> int:
    from shipyard.delivery.promote import promote_command

    return promote_command(
        args.file,
        args.service,
        args.source,
        args.target,
        version=args.version,
        approved_by=args.approved_by,
        reason=args.reason,
    )


def cmd_init(args: argparse.Namespace) -> int:
    from shipyard.scaffold.commands import init_command

    return init_command(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from shipyard.demo import run_demo

    return run_demo(load_plan(args), rows=args.rows)


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="shipyard",
        description="Compile pipelines.yaml into Prometheus-monitored Prefect flows and run them.",
    )
    parser.add_argument("--version", action=_Versions, help="show the versions and exit")
    parser.add_argument(
        "-f",
        "--file",
        default=os.environ.get("SHIPYARD_SPEC", "pipelines.yaml"),
        help="spec file (default: pipelines.yaml, or $SHIPYARD_SPEC)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    from shipyard.scaffold.commands import add_init_parser

    add_init_parser(add, cmd_init)
    p = add("validate", cmd_validate, "check pipelines.yaml and report every problem at once")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p = add(
        "plan",
        cmd_plan,
        "show the steps, their graph and deployments, and what `apply` would change on Prefect",
    )
    p.add_argument("--json", action="store_true", help="print the plan (and changes) as JSON")
    p.add_argument("-o", "--output", help="write the plan to this file (for `apply --plan`)")
    p.add_argument("--offline", action="store_true", help="do not compare with the Prefect server")
    p = add("schema", cmd_schema, "print the JSON Schema of pipelines.yaml")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument(
        "--format",
        choices=["json", "markdown"],
        default="json",
        help="json: JSON Schema; markdown: the spec reference in docs/",
    )
    p = add(
        "apply", cmd_apply, "register blocks, work pool and every compiled deployment on Prefect"
    )
    p.add_argument(
        "--plan", help="apply exactly this plan file (from `shipyard plan -o`); refused if stale"
    )
    p = add(
        "run", cmd_run, "run one compiled flow now, e.g. `shipyard run validate-dataset customers`"
    )
    p.add_argument("flow", help="flow name, e.g. validate-dataset")
    p.add_argument("name", help="deployment name (the resource), e.g. customers")
    p.add_argument(
        "--force",
        action="store_true",
        help="train-model: retrain even when data, spec and code are unchanged",
    )
    p.add_argument(
        "--worker",
        action="store_true",
        help="let a worker of the work pool run it (`shipyard worker start`), and wait",
    )
    p = add("server", cmd_server, "start, stop or check the profile's local Prefect server")
    p.add_argument("action", choices=["start", "stop", "status"])
    p = add(
        "worker", cmd_worker, "start, stop or check a Prefect worker on the profile's work pool"
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument(
        "--once", action="store_true", help="run what is scheduled, then exit (foreground)"
    )
    p = add("build", cmd_build, "build a service's Bento from the registry (offline-safe)")
    p.add_argument("service", help="a service under `services:`")
    p.add_argument(
        "--deploy", action="store_true", help="then start the service, or hot-reload it if running"
    )
    p = add("serve", cmd_serve, "run a service locally with bentoml serve (builds it if needed)")
    p.add_argument("service", help="a service under `services:`")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--stop", action="store_true", help="stop the running service")
    group.add_argument("--status", action="store_true", help="what it serves, with weights")
    group.add_argument("--restart", action="store_true", help="stop, then start again")
    rollout = add("rollout", lambda a: EXIT_OK, "roll a candidate out: start, status, control it")
    rollout_sub = rollout.add_subparsers(dest="rollout_command", required=True, metavar="ACTION")
    for action, text in (
        ("start", "start the rollout (or resume a paused or interrupted one) and follow it"),
        ("status", "the stage, weights, every analysis with its evidence, and the decision"),
        ("promote", "promote the candidate now, skipping the remaining stages (audited)"),
        ("pause", "hold traffic where it is until `resume`"),
        ("resume", "continue a paused rollout"),
        ("abort", "send all traffic back to stable at once (aliases untouched)"),
    ):
        p = rollout_sub.add_parser(action, help=text, description=text)
        p.add_argument("rollout", help="a rollout under `rollouts:`")
        if action in ("promote", "pause", "abort"):
            p.add_argument("--reason", help="why, recorded in the audit log")
        p.set_defaults(func=cmd_rollout)
    from shipyard.abtests.commands import add_abtest_parser

    add_abtest_parser(add, cmd_abtest)
    p = add(
        "monitor", cmd_monitor, "judge a service's last window now: drift, quality, performance"
    )
    p.add_argument("service", help="a service under `monitoring:`")
    p.add_argument("--history", action="store_true", help="the monitor's last runs instead")
    from shipyard.backup.commands import add_backup_parser

    add_backup_parser(add, cmd_backup)
    from shipyard.observability.commands import add_observability_parser

    add_observability_parser(add, cmd_observability)
    from shipyard.alerts.commands import add_alerts_parser

    add_alerts_parser(add, cmd_alerts)
    from shipyard.cicd.commands import add_ci_parser

    add_ci_parser(add, cmd_ci)
    from shipyard.logsearch.commands import add_logs_parser

    add_logs_parser(add, cmd_logs)
    from shipyard.serving.keycommands import add_keys_parser

    add_keys_parser(add, cmd_keys)
    k8s = add("k8s", lambda a: EXIT_OK, "Kubernetes manifests for the services and rollouts")
    k8s_sub = k8s.add_subparsers(dest="k8s_command", required=True, metavar="ACTION")
    p = k8s_sub.add_parser(
        "render", help="write Deployments, Service, HPA and Argo Rollout manifests (no cluster)"
    )
    p.add_argument("name", help="a service under `services:` or a rollout under `rollouts:`")
    p.add_argument("-o", "--output", default="k8s", help="folder to write (default: k8s/)")
    p.set_defaults(func=cmd_k8s_render)
    p = add("mlflow", cmd_mlflow, "start, stop or check the profile's local MLflow server")
    p.add_argument("action", choices=["start", "stop", "status"])
    models = add("models", lambda a: EXIT_OK, "registered models: list, show, promote, repair")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    p = models_sub.add_parser("list", help="every model with its champion and challenger")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models_list)
    p = models_sub.add_parser("show", help="versions, aliases, metrics and data version")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models_show)
    p = models_sub.add_parser("promote", help="make a version the champion (audited)")
    p.add_argument("model")
    p.add_argument("version", help="registry version, e.g. 3")
    p.add_argument("--reason", required=True, help="why (required), recorded in the audit log")
    p.set_defaults(func=cmd_models_promote)
    p = models_sub.add_parser(
        "repair", help="settle what killed trainings left: half-made versions, runs (audited)"
    )
    p.add_argument("model", nargs="?", help="one model (default: every model)")
    p.set_defaults(func=cmd_models_repair)
    features = add("features", cmd_features, "the Feast repository: plan, apply, online lookup")
    features_sub = features.add_subparsers(dest="features_command", required=True, metavar="ACTION")
    features_sub.add_parser("plan", help="what `apply` would change in the registry and stores")
    features_sub.add_parser("apply", help="apply the compiled repository to Feast")
    p = features_sub.add_parser("get", help="online features, e.g. `get churn_v2 customer_id=42`")
    p.add_argument("service")
    p.add_argument("keys", nargs="+", metavar="KEY=VALUE")
    add("env", cmd_env, "print shell exports for using `prefect` against this project's server")
    data = add("data", lambda a: EXIT_OK, "list and restore dataset versions (DVC)")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = data_sub.add_parser("versions", help="list the recorded versions of a dataset")
    p.add_argument("dataset")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_data_versions)
    p = data_sub.add_parser("restore", help="bring back an earlier version of a dataset's file")
    p.add_argument("dataset")
    p.add_argument("version", help="md5 of the version (a unique prefix is enough)")
    p.set_defaults(func=cmd_data_restore)
    p = add(
        "promote",
        cmd_promote,
        "move what passed in one environment to the next: the same Bento, model files and data",
    )
    p.add_argument("service", help="a service under `services:`")
    p.add_argument("--from", dest="source", required=True, help="environment it passed in")
    p.add_argument("--to", dest="target", required=True, help="the next environment")
    p.add_argument("--version", help="refuse unless this is the version that passed")
    p.add_argument("--approved-by", help="who approved it (required where `approval: true`)")
    p.add_argument("--reason", help="why, recorded in both environments' audit logs")
    p = add("demo", cmd_demo, "generate the demo data and run the demo pipeline end to end")
    p.add_argument("--rows", type=int, default=5000, help="rows of demo data (default 5000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ShipyardError as exc:
        print(
            exc.message if isinstance(exc, SpecError) else exc.render(),
            file=sys.stderr,
        )
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `shipyard ... | head`: the reader has what it wanted
        _quiet_closed_stdout()
        return EXIT_OK
    except Exception as exc:  # the last line of defence: no traceback reaches a user
        return _internal_error(exc)
    return code


def _quiet_closed_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _internal_error(exc: BaseException) -> int:
    import traceback

    if os.environ.get("SHIPYARD_DEBUG"):
        traceback.print_exc()
    else:
        log = (
            Path(os.environ.get("SHIPYARD_STATE_DIR", ".shipyard")) / "logs" / "internal-errors.log"
        )
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a", encoding="utf-8") as fh:
                traceback.print_exc(file=fh)
            where = f"the traceback is in {log}"
        except OSError:
            where = "set SHIPYARD_DEBUG=1 to see the traceback"
        print(
            f"internal error: {type(exc).__name__}: {exc}\n  = note: {where}; please report it",
            file=sys.stderr,
        )
    return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
