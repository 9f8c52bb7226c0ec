"""Golden files lock the wording and positions of `shipyard validate` diagnostics.

Each tests/golden/specs/NAME.yaml is validated through the CLI, from inside that folder so file
names in messages are stable, and its stderr compared with tests/golden/expected/NAME.txt (and
stdout of `--format json` with NAME.json for a few). After an intended change in wording, rewrite
the expected files with `SHIPYARD_UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py` and review
the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from shipyard.cli import main

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "tests" / "golden" / "specs"
EXPECTED = ROOT / "tests" / "golden" / "expected"
UPDATE = os.environ.get("SHIPYARD_UPDATE_GOLDEN") == "1"
JSON_CASES = ["columns", "many_errors"]
CODE = re.compile(r"\b[EW]\d{3}\b")


def specs() -> list[Path]:
    return sorted(SPECS.glob("*.yaml"))


@pytest.fixture(autouse=True)
def _stable_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(SPECS)
    for name in list(os.environ):
        if name.startswith("SHOP_GOLDEN_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("SHIPYARD_PROFILE", raising=False)
    monkeypatch.delenv("SHIPYARD_SPEC", raising=False)
    monkeypatch.setenv("SHIPYARD_STATE_DIR", str(tmp_path))  # an internal error logs here


def compare(actual: str, expected: Path) -> None:
    if UPDATE:
        expected.write_text(actual, encoding="utf-8")
        return
    assert expected.exists(), f"no {expected.name}: run with SHIPYARD_UPDATE_GOLDEN=1 to create it"
    assert actual == expected.read_text(encoding="utf-8"), (
        f"{expected.name} differs; if the change is intended, rerun with SHIPYARD_UPDATE_GOLDEN=1"
    )


def exits_ok(spec: Path) -> bool:
    return spec.stem.startswith("warnings")


@pytest.mark.parametrize("spec", specs(), ids=lambda p: p.stem)
def test_validate_text_output(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-f", spec.name, "validate"])
    out, err = capsys.readouterr()
    compare(err, EXPECTED / f"{spec.stem}.txt")
    if exits_ok(spec):
        assert code == 0
        assert re.fullmatch(
            rf"{spec.name}: ok \((\d+ datasets?(, \d+ feature views?)?(, \d+ models?)?|empty)\)\n",
            out,
        )
    else:
        assert code == 1
        assert out == ""
        assert re.search(r"^\d+ errors? (and \d+ warnings? )?found$", err, re.MULTILINE)


@pytest.mark.parametrize("name", JSON_CASES)
def test_validate_json_output(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-f", f"{name}.yaml", "validate", "--format", "json"])
    out, err = capsys.readouterr()
    assert (code, err) == (1, "")
    compare(out, EXPECTED / f"{name}.json")
    items = json.loads(out)
    assert items and all(item["span"]["file"] == f"{name}.yaml" for item in items)
    assert {item["severity"] for item in items} <= {"error", "warning"}


def test_missing_spec_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-f", "no-such-spec.yaml", "validate"]) == 1
    compare(capsys.readouterr().err, EXPECTED / "missing_file.txt")


@pytest.mark.parametrize("spec", specs(), ids=lambda p: p.stem)
def test_spec_exercises_the_codes_its_header_names(spec: Path) -> None:
    header = "".join(line for line in spec.read_text().splitlines(True) if line.startswith("#"))
    named = set(CODE.findall(header))
    assert named, f"{spec.name}: name the codes it exercises in its header comment"
    reported = set(CODE.findall((EXPECTED / f"{spec.stem}.txt").read_text(encoding="utf-8")))
    assert named <= reported


def test_no_expected_file_without_a_case() -> None:
    cases = {p.stem for p in specs()} | {"missing_file"}
    assert {p.stem for p in EXPECTED.iterdir()} <= cases


def test_demo_spec_validates(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate"]) == 0
    out, err = capsys.readouterr()
    assert re.fullmatch(
        r"pipelines\.yaml: ok \(\d+ datasets?, \d+ feature views?, \d+ models?, \d+ services?, "
        r"\d+ alert routes?, \d+ rollouts?, \d+ A/B tests?, \d+ monitors?\)\n",
        out,
    )
    assert err == ""  # not even a warning in the spec people copy from


def test_demo_spec_validates_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


SECTION_GOLDEN = {
    "datasets": "columns",
    "features": "features",
    "models": "models",
    "services": "services",
    "rollouts": "rollouts",
    "ab_tests": "ab_tests",
    "alerts": "monitoring",
    "monitoring": "monitoring",
}
"""The golden spec of each section of the root spec: a new section brings its own."""


def test_every_section_has_a_golden_spec() -> None:
    from shipyard.spec import PipelineSpec

    assert set(SECTION_GOLDEN) == set(PipelineSpec.sections())
    for section, name in SECTION_GOLDEN.items():
        assert (SPECS / f"{name}.yaml").is_file(), section
