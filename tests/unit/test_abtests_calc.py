"""`abtest calc`: each action's text and JSON through a parser built as the CLI builds it."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from typing import Any

import pytest

from shipyard.abtests.calc import SCHEMA, add_calc_parser
from shipyard.errors import ShipyardError
from shipyard.stats.abtest import proportions_ztest, srm_test, welch_test
from shipyard.stats.abtest_power import power_proportions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shipyard")
    top = parser.add_subparsers(dest="command", required=True)
    abtest = top.add_parser("abtest")
    add_calc_parser(abtest.add_subparsers(dest="abtest_command", required=True))
    return parser


def run(command: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """As `shipyard.cli.main` does: run `func`, print a ShipyardError and exit with its code."""
    args = build_parser().parse_args(shlex.split(f"abtest calc {command}"))
    try:
        code: int = args.func(args)
    except ShipyardError as exc:
        print(exc.render(), file=sys.stderr)
        code = exc.exit_code
    out, err = capsys.readouterr()
    return code, out, err


def run_json(command: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, _ = run(f"{command} --format json", capsys)
    assert code == 0
    document: dict[str, Any] = json.loads(out)
    assert document["schema"] == SCHEMA
    assert document["action"] == command.split()[0]
    return document


def test_size_fixed_and_sequential(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run("size --baseline 0.10 --mde 0.02", capsys)
    assert code == 0
    assert "fixed horizon (R power.prop.test): 3,841 per arm, 7,682 total" in out
    document = run_json("size --baseline 0.10 --mde 0.2 --relative --design sequential", capsys)
    result = document["result"]
    assert result["p2"] == pytest.approx(0.12)
    assert result["fixed"]["n"] == pytest.approx(power_proportions(0.1, 0.12, power=0.8).n)
    assert result["n_per_arm"] == int(result["sequential"]["n"]) + 1
    assert 1.5 < result["sequential"]["inflation"] < 2.5
    assert document["input"] == {
        "alpha": 0.05, "baseline": 0.1, "mde": 0.2, "relative": True, "power": 0.8,
        "design": "sequential", "sd": None,
    }  # fmt: skip


def test_size_of_means(capsys: pytest.CaptureFixture[str]) -> None:
    """power.t.test's formula, delta 0.5, sd 2, power 0.8: 252.1 per arm (z formula: 251.2)."""
    document = run_json("size --baseline 10 --mde 0.5 --sd 2", capsys)
    assert document["result"]["fixed"]["n"] == pytest.approx(252.1, abs=0.1)
    assert document["result"]["fixed"]["method"] == "R power.t.test"


def test_proportions(capsys: pytest.CaptureFixture[str]) -> None:
    command = "proportions --x 120 --n 1000 --x 150 --n 1000"
    _, out, _ = run(command, capsys)
    assert "pooled two-proportion z-test: statistic 1.963, p=0.04964" in out
    assert "relative lift 25.00%" in out and "with Yates" in out
    result = run_json(command, capsys)["result"]
    expected = proportions_ztest(120, 1000, 150, 1000)
    assert result["z_test"]["p_value"] == expected.p_value
    assert result["chi_square"]["correct"] is True
    assert result["chi_square_uncorrected"]["statistic"] == pytest.approx(expected.statistic**2)  # type: ignore[operator]


def test_means(capsys: pytest.CaptureFixture[str]) -> None:
    command = "means --mean 10 --sd 2 --n 500 --mean 10.3 --sd 2.1 --n 500"
    _, out, _ = run(command, capsys)
    assert "Welch two-sample t-test" in out and "df 995.6" in out
    result = run_json(command, capsys)["result"]["welch"]
    assert result["p_value"] == welch_test(10, 2, 500, 10.3, 2.1, 500).p_value


def test_srm(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run("srm --observed 5200 4800 --allocation 50 50", capsys)
    assert "SAMPLE-RATIO MISMATCH" in out and "p=6.334e-05" in out
    _, out, _ = run("srm --observed 5050 4950", capsys)
    assert "no mismatch" in out
    result = run_json("srm --observed 5200 4800 --allocation 50 50", capsys)["result"]
    assert result == json.loads(json.dumps(srm_test([5200, 4800], [50, 50]).__dict__))


def test_sequential(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run("sequential --x 120 --n 1000 --x 150 --n 1000", capsys)
    assert "always-valid p=0.4707" in out and "keep going" in out
    _, out, _ = run("sequential --x 1000 --n 10000 --x 1300 --n 10000", capsys)
    assert "significant: stop" in out
    result = run_json("sequential --x 120 --n 1000 --x 150 --n 1000 --tau 0.05", capsys)
    assert result["result"]["tau"] == 0.05 and result["result"]["status"] == "ok"


def test_bayesian(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run("bayesian --x 120 --n 1000 --x 150 --n 1000", capsys)
    assert "chance B beats A 97.51%" in out and "Thompson sampling shares" in out
    result = run_json("bayesian --x 120 --n 1000 --x 150 --n 1000 --min-share 0.1", capsys)
    shares = result["result"]["thompson"]["shares"]
    assert sum(shares) == pytest.approx(1.0) and min(shares) >= 0.1
    assert result["result"]["normal_lift"]["lift_mean"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    "command",
    [
        "proportions --x 0 --n 0 --x 0 --n 10",
        "proportions --x 0 --n 10 --x 0 --n 10",
        "sequential --x 10 --n 10 --x 10 --n 10",
        "bayesian --x 0 --n 0 --x 0 --n 0",
        "means --mean 1 --sd 0 --n 10 --mean 1 --sd 0 --n 10",
        "srm --observed 0 0",
    ],
)
def test_no_data_is_a_result_not_an_error(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(command, capsys)
    assert code == 0 and "not enough data" in out
    run_json(command, capsys)  # strict JSON: no NaN anywhere


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("proportions --x 120 --n 100 --x 150 --n 1000", "120 successes out of 100 trials"),
        ("sequential --x -1 --n 100 --x 5 --n 100", "must not be negative"),
        ("bayesian --x 120 --n 1000 --x 150", "got 2 --x and 1 --n"),
        ("means --mean 10 --sd 2 --n 500 --mean 10.3 --sd 2.1", "got 2 --mean, 2 --sd, 1 --n"),
        ("srm --observed 5200 -1", "non-negative"),
        ("size --baseline 0.1 --mde 0", "p1 and p2 are equal"),
        ("size --baseline 0.95 --mde 0.1", "p2 must be in (0, 1)"),
    ],
)
def test_bad_input_exits_1_with_a_message(
    command: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(command, capsys)
    assert code == 1 and out == ""
    assert err.startswith("error: abtest calc ") and message in err


def test_building_the_parser_imports_no_numerics() -> None:
    """The CLI builds this parser on every start: numpy, scipy, statsmodels wait for an action."""
    code = (
        "import argparse, json, sys\n"
        "from shipyard.abtests.calc import add_calc_parser\n"
        "add_calc_parser(argparse.ArgumentParser().add_subparsers())\n"
        "heavy = ('numpy', 'scipy', 'statsmodels')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
