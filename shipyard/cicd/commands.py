"""`shipyard ci render --provider github|gitlab -o DIR` and `shipyard ci plan-diff BASE HEAD`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.cicd.project import CiProject
    from shipyard.cicd.render import RenderOptions
    from shipyard.compiler import Plan

EXIT_OK = 0
PROVIDERS = ("github", "gitlab")


def add_ci_parser(
    add: Callable[..., argparse.ArgumentParser], command: Callable[[argparse.Namespace], int]
) -> None:
    """`ci` with its actions; `command(args)` runs them."""
    ci = add("ci", lambda a: EXIT_OK, "CI/CD pipelines: render them, diff two plans for review")
    actions = ci.add_subparsers(dest="ci_command", required=True, metavar="ACTION")
    text = (
        "write the project's CI/CD pipeline: validate, plan diff, tests and gates, data checks, "
        "training, build, deploy and promotions"
    )
    p = actions.add_parser("render", help=text, description=text)
    p.add_argument("--provider", choices=PROVIDERS, required=True)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="folder to write: .github/workflows/ (github) or the repository root (gitlab)",
    )
    p.add_argument(
        "--coverage-floor",
        type=_percent,
        default=80,
        help="the tests fail below this coverage, in percent (default 80)",
    )
    p.add_argument("--branch", default="main", help="the branch that releases (default main)")
    p.add_argument(
        "--runs-on",
        default="ubuntu-latest",
        help="github: runner of the release jobs, e.g. a self-hosted label (default ubuntu-latest)",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite a file that was not rendered by Shipyard"
    )
    text = "the difference of two `shipyard plan --offline --json -o` files, for review"
    p = actions.add_parser("plan-diff", help=text, description=text)
    p.add_argument("base", help="the base's plan file")
    p.add_argument("head", help="the head's plan file")
    p.add_argument("--format", choices=["markdown", "text"], default="text")
    p.add_argument(
        "--missing-base-ok",
        action="store_true",
        help="a missing base file means the base had no valid spec: every deployment is new",
    )
    text = (
        "bring back each dataset file the checkout's <file>.dvc pointer names, from the "
        "profile's DVC remote (a CI job's first step)"
    )
    actions.add_parser("pull-data", help=text, description=text)
    for action in actions.choices.values():
        action.set_defaults(func=command)


def _percent(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole percentage from 0 to 100")
    return int(text)


def ci_command(plan: Plan | None, args: argparse.Namespace) -> int:
    """Run `ci ACTION`; `plan` is the project's (None for plan-diff, which reads files only)."""
    if args.ci_command == "plan-diff":
        return _plan_diff(Path(args.base), Path(args.head), args.format, args.missing_base_ok)
    assert plan is not None
    if args.ci_command == "pull-data":
        from shipyard.cicd.data import pull_data

        return pull_data(plan)
    from shipyard.cicd.render import RenderOptions

    options = RenderOptions(
        coverage_floor=args.coverage_floor, branch=args.branch, runs_on=args.runs_on
    )
    for path in render_files(plan, args.provider, Path(args.output), options, force=args.force):
        print(f"wrote {path}")
    return EXIT_OK


def render_files(
    plan: Plan, provider: str, output: Path, options: RenderOptions, *, force: bool = False
) -> list[Path]:
    """Render the provider's pipeline into `output`; a file there that Shipyard did not
    render is kept unless `force` (it may be a hand-written pipeline)."""
    from shipyard.cicd import render
    from shipyard.cicd.project import ci_project

    facts = ci_project(plan)
    if provider == "github":
        name, document = render.GITHUB_FILE, render.github_workflow(facts, options)
    else:
        name, document = render.GITLAB_FILE, render.gitlab_pipeline(facts, options)
    target = output / name
    _refuse_foreign(target, force)
    text = render.header(provider, facts) + _approval_note(provider, facts) + render.dump(document)
    output.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return [target]


def _approval_note(provider: str, facts: CiProject) -> str:
    gated = [s.profile for s in facts.stages if s.approval]
    if not gated:
        return ""
    names = ", ".join(gated)
    if provider == "github":
        return (
            f"# Approval: the jobs of environment(s) {names} wait for a person. Give each of\n"
            "# these GitHub environments required reviewers (Settings > Environments >\n"
            "# Required reviewers): the reviewer who approves is the promotion's --approved-by,\n"
            "# and without one the job stops at 'who approved'.\n"
        )
    return (
        f"# Approval: the promotion into {names} is a manual job; the person who plays it is\n"
        "# the promotion's --approved-by. Protect the environment (Settings > CI/CD >\n"
        "# Protected environments) so that only the approvers may play it.\n"
    )


def _refuse_foreign(target: Path, force: bool) -> None:
    from shipyard.cicd.render import HEADER_MARK

    if force or not target.exists():
        return
    try:
        head = target.read_text(encoding="utf-8")[:400]
    except (OSError, UnicodeDecodeError):
        head = ""
    if HEADER_MARK not in head:
        raise ShipyardError(
            f"{target} exists and was not rendered by Shipyard: it was left as it is",
            hint="move it away, or overwrite it with `shipyard ci render ... --force`",
        )


def _plan_diff(base: Path, head: Path, fmt: str, missing_base_ok: bool) -> int:
    from shipyard.cicd.plandiff import diff_files, render_markdown, render_text

    if not head.exists():
        raise ShipyardError(
            f"plan file '{head}' not found",
            hint=f"write it with `shipyard plan --offline --json -o {head}`",
        )
    base_path: Path | None = base
    if not base.exists():
        if not missing_base_ok:
            raise ShipyardError(
                f"plan file '{base}' not found",
                hint=f"write it with `shipyard plan --offline --json -o {base}` on the base, "
                "or pass --missing-base-ok when the base has no valid spec",
            )
        base_path = None
    base_plan, head_plan, diff = diff_files(base_path, head)
    render = render_markdown if fmt == "markdown" else render_text
    sys.stdout.write(render(base_plan, head_plan, diff))
    return EXIT_OK
