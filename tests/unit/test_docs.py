"""docs/errors.md keeps up with the code: every code documented, every example really reported.

After an intended change in wording, rewrite the "Reported" blocks with
`SHIPYARD_UPDATE_GOLDEN=1 pytest tests/unit/test_docs.py` and review the diff.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipyard.compiler import StepBase
from shipyard.compiler.graph import check_graph
from shipyard.diagnostics import render_text
from shipyard.loader import load_spec, load_text
from shipyard.validation import validate

ROOT = Path(__file__).resolve().parents[2]
ERRORS_MD = ROOT / "docs" / "errors.md"
UPDATE = os.environ.get("SHIPYARD_UPDATE_GOLDEN") == "1"
CODE_IN_SOURCE = re.compile(r"""["']([EW]\d{3,4})["']""")
HEADING = re.compile(r"^## ([EW]\d{3,4}) ", re.MULTILINE)
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)
# codes with no spec to show: a missing file, and problems of the compiled graph
WITHOUT_YAML_EXAMPLE = {"E003", "E301", "E302"}


@dataclass
class Section:
    code: str
    text: str
    blocks: list[tuple[str, str]]


def sections() -> list[Section]:
    text = ERRORS_MD.read_text(encoding="utf-8")
    found = []
    for part in re.split(r"\n(?=## [EW]\d{3,4} )", text)[1:]:
        match = HEADING.match(part)
        assert match, part[:40]
        found.append(Section(match.group(1), part, BLOCK.findall(part)))
    return found


def codes_in_source() -> set[str]:
    return {
        code
        for path in (ROOT / "shipyard").rglob("*.py")
        for code in CODE_IN_SOURCE.findall(path.read_text(encoding="utf-8"))
    }


def reported(spec: str) -> tuple[list[str], str]:
    diagnostics = validate(load_text(spec, "pipelines.yaml", env={}))
    text = render_text(diagnostics, {"pipelines.yaml": spec})
    return [d.code for d in diagnostics], text + "\n"


def test_every_code_in_the_source_is_documented() -> None:
    source = codes_in_source()
    assert len(source) >= 20  # the scan found the codes
    documented = {s.code for s in sections()}
    assert sorted(source - documented) == [], "add a section for each to docs/errors.md"


def test_every_documented_code_is_still_emitted() -> None:
    stale = {s.code for s in sections()} - codes_in_source()
    assert sorted(stale) == [], "remove these from docs/errors.md, or emit them again"


def test_sections_are_in_code_order_and_unique() -> None:
    codes = [s.code for s in sections()]
    assert codes == sorted(set(codes), key=lambda c: (c[0] == "W", int(c[1:])))


def test_every_code_with_a_spec_has_bad_reported_and_fixed_examples() -> None:
    for section in sections():
        kinds = [kind for kind, _ in section.blocks]
        if section.code in WITHOUT_YAML_EXAMPLE:
            assert "yaml" not in kinds and section.blocks, section.code
        else:
            assert kinds == ["yaml", "text", "yaml"], section.code


@pytest.mark.parametrize(
    "section",
    [s for s in sections() if s.code not in WITHOUT_YAML_EXAMPLE],
    ids=lambda s: s.code,
)
def test_bad_example_reports_the_code_and_fixed_example_nothing(section: Section) -> None:
    (_, bad), (_, shown), (_, fixed) = section.blocks
    codes, text = reported(bad)
    assert section.code in codes
    assert set(codes) == {section.code}, "keep each example to the one problem it shows"
    if UPDATE:
        refresh(section, shown, text)
    else:
        assert shown == text, "rerun with SHIPYARD_UPDATE_GOLDEN=1 to refresh docs/errors.md"
    assert reported(fixed)[0] == []


def refresh(section: Section, old: str, new: str) -> None:
    """Write the real report into the section's "Reported" block."""
    text = ERRORS_MD.read_text(encoding="utf-8")
    updated = section.text.replace(f"```text\n{old}```", f"```text\n{new}```", 1)
    ERRORS_MD.write_text(text.replace(section.text, updated, 1), encoding="utf-8")


def test_missing_file_example_is_what_the_cli_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    [section] = [s for s in sections() if s.code == "E003"]
    loaded = load_spec("pipeline.yaml")
    text = render_text(loaded.diagnostics, {})
    assert f"$ shipyard -f pipeline.yaml validate\n{text}\n" == section.blocks[0][1]


def test_graph_examples_are_what_the_compiler_reports() -> None:
    def step(step_id: str, *needs: str) -> StepBase:
        name = step_id.split(".", 1)[1]
        return StepBase(
            kind="test", id=step_id, name=name, description="", needs=needs, tasks=("x",)
        )

    cycle = [step("model.churn", "service.churn-api"), step("service.churn-api", "model.churn")]
    unknown = [step("model.churn", "dataset.custmers")]
    for code, steps in (("E301", cycle), ("E302", unknown)):
        [section] = [s for s in sections() if s.code == code]
        diagnostics = [d for d in check_graph(steps) if d.code == code]
        assert render_text(diagnostics, {}) + "\n" == section.blocks[0][1]
