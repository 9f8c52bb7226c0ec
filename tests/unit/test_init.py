"""`shipyard init`: types and rules inferred from frames, a written spec that the project's own
loader and validator accept, and the refusals that keep a user's files safe."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shipyard.cli import main
from shipyard.errors import ShipyardError
from shipyard.project import load_project
from shipyard.scaffold.commands import init_project
from shipyard.scaffold.infer import (
    bounds,
    features_for,
    key_columns,
    profile_frame,
    propose_expectations,
    suggested_target,
    task_for,
)
from shipyard.scaffold.render import examples, scalar


def customers(rows: int = 60) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": range(1000, 1000 + rows),
            "code": [f"{i:05d}" for i in range(rows)],  # leading zeros: an identifier, text
            "plan": [("basic", "plus", "pro")[i % 3] for i in range(rows)],
            "answer": [("yes", "no")[i % 2] for i in range(rows)],
            "charges": [10.5 + i for i in range(rows)],
            "calls": [i % 7 for i in range(rows)],
            "email": [f"user{i}@example.com" for i in range(rows)],
            "signed_up": [f"2024-01-{1 + i % 28:02d}" for i in range(rows)],
            "churned": [i % 4 == 0 for i in range(rows)],
            "notes": [None if i % 5 else f"called {i} times" for i in range(rows)],
        }
    )


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as `read_data` reads a CSV: every column text, missing values NaN."""
    return (
        frame.astype(object).where(frame.notna(), None).map(lambda v: None if v is None else str(v))
    )


@pytest.mark.parametrize("reader", [lambda f: f, as_text], ids=["typed", "csv-text"])
def test_types_are_inferred_from_typed_and_text_columns(reader: object) -> None:
    profile = profile_frame(reader(customers()))  # type: ignore[operator]
    types = {c.name: (c.type, c.categories) for c in profile.columns}
    assert types["customer_id"] == ("int", None)
    assert types["code"] == ("str", None), "00012 stays text: its zeros matter"
    assert types["plan"] == ("str", ("basic", "plus", "pro"))
    assert types["answer"] == ("str", ("no", "yes"))
    assert types["charges"] == ("float", None)
    assert types["calls"] == ("int", None)
    assert types["signed_up"] == ("datetime", None)
    assert types["churned"] == ("bool", None)
    assert types["notes"][0] == "str"
    assert profile.column("notes").nulls == 48
    assert profile.column("charges").minimum == 10.5 and profile.column("calls").maximum == 6


def test_many_distinct_strings_are_text_not_a_category() -> None:
    frame = pd.DataFrame({"city": [f"city-{i % 30}" for i in range(300)]})
    assert profile_frame(frame).column("city").categories is None
    few = pd.DataFrame({"city": ["a", "b", "c", "d"]})  # each seen once: not yet a category
    assert profile_frame(few).column("city").categories is None


def test_expectations_proposed_from_the_data() -> None:
    profile = profile_frame(customers())
    key = key_columns(profile)
    assert key == ["customer_id"]
    proposals = {(p.kind, str(p.args)) for p in propose_expectations(profile, key)}
    kinds = [p.kind for p in propose_expectations(profile, key)]
    not_null = next(p for p in propose_expectations(profile, key) if p.kind == "not_null")
    assert "notes" not in not_null.args and "customer_id" not in not_null.args
    assert "charges" in not_null.args
    assert ("between", str({"column": "calls", "min": 0, "max": 7})) in proposals
    assert ("regex", str({"column": "email", "pattern": r"^[^@\s]+@[^@\s]+$"})) in proposals
    assert ("unique", "['email']") in proposals and ("unique", "['code']") in proposals
    assert ("row_count", str({"min": 30})) in proposals
    assert "unique" not in [
        p.kind for p in propose_expectations(profile, []) if "plan" in str(p.args)
    ]
    assert kinds.count("regex") == 1, "regex only where obvious"


def test_an_identifier_unique_with_a_date_is_a_composite_key(tmp_path: Path) -> None:
    """Monthly snapshots: each customer once per month, so (customer_id, month) is the key."""
    months = [f"2024-{m:02d}-01" for m in range(1, 7)]
    frame = pd.DataFrame(
        {
            "customer_id": [c for c in range(20) for _ in months],
            "month": months * 20,
            "spend": [float(i % 13) for i in range(120)],
        }
    )
    profile = profile_frame(as_text(frame))
    assert key_columns(profile) == ["customer_id", "month"]
    assert (
        profile_frame(frame.iloc[:-1].pipe(lambda f: pd.concat([f, f.iloc[:1]]))).unique_pairs == []
    )
    write_csv(tmp_path, frame)
    assert init_project(tmp_path / "pipelines.yaml", str(tmp_path / "data.csv")) == 0
    project = load_project(tmp_path / "pipelines.yaml")
    assert project.ok, project.render()
    assert project.loaded.spec.datasets["data"].key == ["customer_id", "month"]


@pytest.mark.parametrize(
    ("low", "high", "whole", "expected"),
    [
        (0, 6, True, (0, 7)),
        (6.981, 28.11, False, (4.0, 31.0)),
        (-5.0, 5.0, False, (-6.0, 6.0)),
        (143.5, 2501.0, False, (0.0, 2800.0)),
        (3.0, 3.0, True, (2, 4)),
    ],
)
def test_between_bounds_have_a_margin_and_round_outwards(
    low: float, high: float, whole: bool, expected: tuple[float, float]
) -> None:
    assert bounds(low, high, whole) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (6e-06, "0.000006"),
        (5.5e-05, "0.000055"),
        (4.0, "4.0"),
        (2800, "2800"),
        (1e16, "10000000000000000.0"),
        ("yes", '"yes"'),
        ("mean radius", '"mean radius"'),
        ("plan", "plan"),
        ("00123", '"00123"'),
    ],
)
def test_scalars_read_back_as_written(value: object, text: str) -> None:
    import yaml

    assert scalar(value) == text
    assert yaml.safe_load(f"v: {text}")["v"] == value


def test_target_task_and_features() -> None:
    profile = profile_frame(customers())
    assert suggested_target(profile) == "churned"
    assert task_for(profile.column("churned")) == "classification"
    assert task_for(profile.column("charges")) == "regression"
    assert task_for(profile.column("calls")) == "classification", "7 values: classes"
    used, left_out = features_for(profile, "churned", ["customer_id"])
    assert used == ["plan", "answer", "charges", "calls"]
    assert set(left_out) == {"customer_id", "code", "email", "signed_up", "notes"}


def write_csv(folder: Path, frame: pd.DataFrame, name: str = "data.csv") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("target", "counts"),
    [
        ("churned", {"datasets": 1, "models": 1}),
        ("charges", {"datasets": 1, "models": 1}),
        ("answer", {"datasets": 1, "models": 1}),
        ("plan", {"datasets": 1, "models": 1}),
        (None, {"datasets": 1}),
    ],
    ids=["binary", "regression", "yes-no", "multiclass", "no-target"],
)
def test_written_spec_validates_and_compiles(
    tmp_path: Path, target: str | None, counts: dict[str, int]
) -> None:
    write_csv(tmp_path / "data", customers())
    assert (
        init_project(
            tmp_path / "pipelines.yaml", str(tmp_path / "data" / "data.csv"), target=target
        )
        == 0
    )
    text = (tmp_path / "pipelines.yaml").read_text()
    project = load_project(tmp_path / "pipelines.yaml")
    assert project.ok, project.render()
    spec = project.loaded.spec
    assert {k: len(getattr(spec, k)) for k in ("datasets", "models") if getattr(spec, k)} == counts
    dataset = spec.datasets["data"]
    assert dataset.path == "data/data.csv" and dataset.key == "customer_id"
    if target is None:
        assert "'churned' looks like the label" in text and "#   churned:" in text
        return
    model = next(iter(spec.models.values()))
    assert model.target == target and model.gate.vs_champion is not None
    assert model.task == ("regression" if target == "charges" else "classification")
    if target == "answer":
        assert model.positive_class == "yes"


def test_a_suggested_model_on_a_wide_file_is_commented_out_whole(tmp_path: Path) -> None:
    """The suggested model's feature list wraps over several lines: every one is commented,
    and uncommented the model validates."""
    frame = pd.DataFrame(
        {f"measurement_number_{i}": [j * 0.5 + i for j in range(40)] for i in range(12)}
    )
    write_csv(tmp_path, frame.assign(label=[j % 2 for j in range(40)]))
    spec = tmp_path / "pipelines.yaml"
    assert init_project(spec, str(tmp_path / "data.csv")) == 0
    text = spec.read_text()
    model = text[text.index("# models:") : text.index("\n\n", text.index("# models:"))]
    assert model.count("measurement_number_") == 12 and len(model.splitlines()) > 12
    assert all(line.startswith("#") for line in model.splitlines())
    spec.write_text(text.replace(model, "\n".join(line[2:] for line in model.splitlines())))
    project = load_project(spec)
    assert project.ok, project.render()
    assert project.loaded.spec.models["label"].task == "classification"


@pytest.mark.parametrize("target", ["churned", "plan", "charges"])
def test_commented_examples_validate_when_uncommented(tmp_path: Path, target: str) -> None:
    write_csv(tmp_path, customers())
    init_project(tmp_path / "pipelines.yaml", str(tmp_path / "data.csv"), target=target)
    spec = tmp_path / "pipelines.yaml"
    text = spec.read_text()
    head, marker, commented = text.partition("docs/monitoring.md).\n")
    assert marker and commented.startswith(f"# services:\n#   {target}-api:")
    uncommented = "".join(
        line.removeprefix("#").removeprefix(" ") for line in commented.splitlines(True)
    )
    spec.write_text(head + marker + uncommented)
    project = load_project(spec, env={"SHIPYARD_SECRET_" + target.upper() + "_API_KEY": "k"})
    assert project.ok, project.render()
    loaded = project.loaded.spec
    assert (
        list(loaded.services)
        == list(loaded.rollouts)
        == list(loaded.monitoring)
        == [f"{target}-api"]
    )
    assert examples(target, "classification").startswith("services:")


def test_refuses_to_overwrite_without_force_and_keeps_a_backup_with_it(tmp_path: Path) -> None:
    write_csv(tmp_path, customers())
    spec = tmp_path / "pipelines.yaml"
    spec.write_text("project: mine\n")
    with pytest.raises(ShipyardError, match=r"'pipelines\.yaml' already exists") as refused:
        init_project(spec, str(tmp_path / "data.csv"))
    assert "--force" in (refused.value.hint or "")
    assert spec.read_text() == "project: mine\n"
    assert init_project(spec, str(tmp_path / "data.csv"), force=True) == 0
    assert (tmp_path / "pipelines.yaml.bak").read_text() == "project: mine\n"
    assert spec.read_text().startswith("# A starter spec")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "data file 'data.csv' not found"),
        ("", "has no columns"),
        ("a,b\n", "has a header but no rows"),
        (b"\xff\xfe\x00garbage", "cannot read 'data.csv' as csv: it is not UTF-8 text"),
        ("# source: somewhere\na,b\n1,2\n", "the first line of 'data.csv' is a comment"),
        ("a;b;c\n1;2;3\n4;5;6\n", "'data.csv' is separated by semicolons, not commas"),
        ("a\tb\n1\t2\n", "'data.csv' is separated by tabs, not commas"),
        # scikit-learn's iris.csv: rows, features, then the class names
        (
            "6,2,setosa,versicolor,virginica\n" + "5.1,3.5,1.4,0.2,0\n" * 6,
            r"starts with numbers \(6, 2\)",
        ),
        # scikit-learn's wine_data.csv: the same line, on rows with more fields
        (
            "4,3,class_0\n" + "1.1,2.2,3.3,0\n" * 4,
            r"starts with numbers \(4, 3\)",
        ),
        (
            "4,3,class_0,class_1\n" + "1.1,2.2,3.3,4.4,5.5,0\n" * 4,
            "have 6 fields but its first line names 4",
        ),
        ("1.5,2,0\n2.5,3,1\n", "holds only numbers"),
        (",a,b\n0,1,2\n1,3,4\n", "column 1 of 'data.csv' has no name"),
        ("a,b,a\n1,2,3\n", "names 'a' more than once"),
    ],
    ids=[
        "missing",
        "empty",
        "header-only",
        "unreadable",
        "comment",
        "semicolons",
        "tabs",
        "counts-line",
        "counts-line-fewer-names",
        "counts-line-wider-rows",
        "no-header",
        "unnamed-column",
        "duplicate-names",
    ],
)
def test_bad_data_files_are_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | bytes | None, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    if isinstance(content, bytes):
        (tmp_path / "data.csv").write_bytes(content)
    elif content is not None:
        (tmp_path / "data.csv").write_text(content)
    with pytest.raises(ShipyardError, match=message) as failed:
        init_project(tmp_path / "pipelines.yaml", "data.csv")
    assert failed.value.hint
    assert not (tmp_path / "pipelines.yaml").exists()


def test_other_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path, customers())
    with pytest.raises(ShipyardError, match="--target 'churn' is not a column") as typo:
        init_project(tmp_path / "pipelines.yaml", "data.csv", target="churn")
    assert typo.value.hint == "did you mean 'churned'?"
    with pytest.raises(ShipyardError, match="holds dates"):
        init_project(tmp_path / "pipelines.yaml", "data.csv", target="signed_up")
    with pytest.raises(ShipyardError, match="is not a project name"):
        init_project(tmp_path / "pipelines.yaml", "data.csv", name="My Project")
    with pytest.raises(ShipyardError, match="not a format `shipyard init` reads"):
        init_project(tmp_path / "pipelines.yaml", "data.xlsx")
    outside = write_csv(tmp_path.parent / f"{tmp_path.name}-elsewhere", customers())
    with pytest.raises(ShipyardError, match="outside the project folder"):
        init_project(tmp_path / "pipelines.yaml", str(outside))
    write_csv(tmp_path / "data", customers(), "second.csv")
    with pytest.raises(ShipyardError, match=r"2 candidates here: data\.csv, data/second\.csv"):
        init_project(tmp_path / "pipelines.yaml", None)
    assert not (tmp_path / "pipelines.yaml").exists()


def test_cli_finds_the_one_data_file_reads_parquet_and_ignores_the_state_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    customers().assign(signed_up=lambda f: pd.to_datetime(f["signed_up"])).to_parquet(
        tmp_path / "data" / "customers.parquet"
    )
    (tmp_path / ".gitignore").write_text("*.pyc")
    assert main(["init", "--name", "shop", "--target", "churned"]) == 0
    out = capsys.readouterr().out
    assert "wrote pipelines.yaml: dataset 'customers' (10 columns, 60 rows), model 'churned'" in out
    assert (tmp_path / ".gitignore").read_text() == (
        "*.pyc\n# Shipyard's state: servers' databases, models, logs\n.shipyard/\n"
    )
    spec = load_project(tmp_path / "pipelines.yaml").loaded.spec
    assert spec.project == "shop" and spec.datasets["customers"].columns["signed_up"] == "datetime"
    assert main(["init", "--force"]) == 0
    assert "to .gitignore" not in capsys.readouterr().out
    assert (tmp_path / ".gitignore").read_text().count(".shipyard/") == 1
    assert main(["init"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_headers_that_only_look_odd_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Years as column names (after names) and R's row names (one unnamed leading field) are
    headers: the spec names the columns the file has."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "years.csv").write_text("country,1960,1961\nAruba,4.8,4.6\nAndorra,,1.2\n")
    assert init_project(tmp_path / "pipelines.yaml", "years.csv") == 0
    columns = load_project(tmp_path / "pipelines.yaml").loaded.spec.datasets["years"].columns
    assert list(columns) == ["country", "1960", "1961"]
    (tmp_path / "r.csv").write_text('"w","t"\n"1",26.5,1\n"2",27.6,2\n"3",28.1,3\n')
    assert init_project(tmp_path / "pipelines.yaml", "r.csv", force=True) == 0
    columns = load_project(tmp_path / "pipelines.yaml").loaded.spec.datasets["r"].columns
    assert columns == {"w": "float", "t": "int"}


def test_a_target_needs_a_feature_and_a_suggestion_must_be_learnable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "one.csv").write_text("x\n1\n2\n3\n4\n")
    with pytest.raises(ShipyardError, match="--target 'x' leaves no column to learn from"):
        init_project(tmp_path / "pipelines.yaml", "one.csv", target="x")
    assert not (tmp_path / "pipelines.yaml").exists()
    # a column named like a label that is free text: no --target was given, so no error about it
    pd.DataFrame({"x": range(30), "label": [f"t{i}" for i in range(30)]}).to_csv(
        tmp_path / "free.csv", index=False
    )
    assert init_project(tmp_path / "pipelines.yaml", "free.csv") == 0
    text = (tmp_path / "pipelines.yaml").read_text()
    assert "# models:" not in text and "shipyard init DATA --target COLUMN" in text
