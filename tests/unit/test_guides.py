"""docs/guide/ stays true to the code: the error codes it cites exist in docs/errors.md, every
`shipyard <command>` it shows is a command of the CLI (and its action, where the command has a
fixed set), and its links lead to pages that exist."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from support import ROOT

from shipyard.cli import build_parser

GUIDE = ROOT / "docs" / "guide"
PAGES = sorted(GUIDE.glob("*.md"))
_CODE = re.compile(r"\b[EW]\d{3,4}\b")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SPAN = re.compile(r"`([^`]+)`")
_COMMAND = re.compile(
    r"(?:^|[\s;|&(])shipyard((?:\s+-[-\w]+(?:\s+[\w./-]+)?)*)\s+([a-z][\w-]*)(?:\s+([a-z][\w-]*))?"
)
_LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _actions(command: argparse.ArgumentParser) -> set[str] | None:
    """The fixed first positional of a command (its actions or choices), if it has one."""
    for action in command._actions:
        if action.option_strings or action.dest in ("help",):
            continue
        return set(action.choices) if action.choices else None
    return None


def shown_commands(text: str) -> list[tuple[str, str | None]]:
    """(command, next word) of every `shipyard ...` in the page's code: fenced blocks and spans."""
    code = [m.group(1) for m in _FENCE.finditer(text)]
    prose = _FENCE.sub("", text)
    code += [" ".join(m.group(1).split()) for m in _SPAN.finditer(prose)]
    found = []
    for snippet in code:
        for line in snippet.splitlines():
            for match in _COMMAND.finditer(line.removeprefix("$ ")):
                found.append((match.group(2), match.group(3)))
    return found


def test_the_guide_has_its_pages() -> None:
    names = {p.name for p in PAGES}
    assert {"tutorial.md", "best-practices.md", "deployment.md", "troubleshooting.md"} <= names


def test_error_codes_in_troubleshooting_exist() -> None:
    documented = set(
        re.findall(r"^## ([EW]\d{3,4}) ", (ROOT / "docs" / "errors.md").read_text(), re.M)
    )
    cited = set(_CODE.findall((GUIDE / "troubleshooting.md").read_text()))
    assert len(cited) >= 15, "troubleshooting cites the common codes"
    assert not cited - documented, f"not in docs/errors.md: {sorted(cited - documented)}"


def test_extraction_reads_code_only() -> None:
    text = (
        "Shipyard runs.\n`shipyard -f a.yaml models list` and\n"
        "```console\n$ shipyard serve x --stop\n```\n"
    )
    assert sorted(shown_commands(text)) == [("models", "list"), ("serve", "x")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_shown_is_one_of_the_cli(page: Path) -> None:
    commands = _commands()
    shown = shown_commands(page.read_text())
    assert shown, f"{page.name} shows no shipyard command"
    wrong = []
    for command, word in shown:
        if command not in commands:
            wrong.append(f"shipyard {command}")
            continue
        actions = _actions(commands[command])
        if actions is not None and word is not None and word not in actions:
            wrong.append(f"shipyard {command} {word} (actions: {', '.join(sorted(actions))})")
    assert not wrong, f"{page.name}: not commands of the CLI: {wrong}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_lead_to_pages(page: Path) -> None:
    missing = []
    for target in _LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path = (page.parent / target).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"{page.name} links to pages that do not exist: {missing}"
