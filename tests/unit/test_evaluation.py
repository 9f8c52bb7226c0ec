"""Holdout evaluation: metrics match scikit-learn; tables, PNG plots, Markdown; a cheap import."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as sk

from shipyard.stats.metrics import default_metrics, suitable_metrics
from shipyard.training.evaluation import EvaluationError, evaluate, metrics_for

pytestmark = pytest.mark.filterwarnings("error")  # e.g. sklearn's UndefinedMetricWarning
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    y_true = rng.random(400) < 1 / (1 + np.exp(-2 * x))
    y_score = 1 / (1 + np.exp(-(1.5 * x + rng.normal(scale=0.7, size=400))))
    return y_true, y_score >= 0.5, y_score


@pytest.fixture(scope="module")
def continuous() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    y_true = rng.uniform(1, 100, size=300)
    return y_true, y_true * 1.1 + rng.normal(scale=5, size=300)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_classification_metrics_agree_with_sklearn(binary: tuple[np.ndarray, ...]) -> None:
    y_true, y_pred, y_score = binary
    got = metrics_for("classification", y_true, y_pred, y_score, suitable_metrics("classification"))
    expected = {
        "roc_auc": sk.roc_auc_score(y_true, y_score),
        "pr_auc": sk.average_precision_score(y_true, y_score),
        "accuracy": sk.accuracy_score(y_true, y_pred),
        "f1": sk.f1_score(y_true, y_pred),
        "f1_macro": sk.f1_score(y_true, y_pred, average="macro"),
        "f1_weighted": sk.f1_score(y_true, y_pred, average="weighted"),
        "precision": sk.precision_score(y_true, y_pred),
        "recall": sk.recall_score(y_true, y_pred),
        "log_loss": sk.log_loss(y_true, y_score),
        "brier": sk.brier_score_loss(y_true, y_score),
    }
    assert list(got) == list(suitable_metrics("classification"))
    assert got == pytest.approx(expected, rel=1e-12)
    assert all(type(value) is float for value in got.values())


def test_regression_metrics_agree_with_sklearn(continuous: tuple[np.ndarray, ...]) -> None:
    y_true, y_pred = continuous
    got = metrics_for("regression", y_true, y_pred, metrics=suitable_metrics("regression"))
    expected = {
        "rmse": np.sqrt(sk.mean_squared_error(y_true, y_pred)),
        "mae": sk.mean_absolute_error(y_true, y_pred),
        "r2": sk.r2_score(y_true, y_pred),
        "mape": sk.mean_absolute_percentage_error(y_true, y_pred),
    }
    assert got == pytest.approx(expected, rel=1e-12)


def test_bool_and_integer_labels_give_the_same_metrics(binary: tuple[np.ndarray, ...]) -> None:
    y_true, y_pred, y_score = binary
    names = suitable_metrics("classification")
    as_bool = metrics_for("classification", y_true, y_pred, y_score, names)
    as_int = metrics_for("classification", y_true.astype(int), y_pred.astype(int), y_score, names)
    assert as_bool == as_int


def test_defaults_apply_and_drop_score_metrics_without_y_score(
    binary: tuple[np.ndarray, ...],
) -> None:
    y_true, y_pred, y_score = binary
    assert tuple(metrics_for("classification", y_true, y_pred, y_score)) == default_metrics(
        "classification"
    )
    assert tuple(metrics_for("classification", y_true, y_pred)) == ("accuracy", "f1")


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc", "log_loss", "brier"])
def test_score_metric_without_y_score_names_the_metric(
    binary: tuple[np.ndarray, ...], metric: str
) -> None:
    y_true, y_pred, _ = binary
    with pytest.raises(ValueError, match=f"'{metric}' needs y_score"):
        metrics_for("classification", y_true, y_pred, metrics=["accuracy", metric])
    with pytest.raises(ValueError, match=f"'{metric}' needs y_score"):
        evaluate("classification", y_true, y_pred, metrics=[metric])


def test_unknown_metric_raises_naming_it(binary: tuple[np.ndarray, ...]) -> None:
    y_true, y_pred, y_score = binary
    with pytest.raises(EvaluationError, match="'roc_aucc' is not a metric") as raised:
        metrics_for("classification", y_true, y_pred, y_score, ["roc_aucc"])
    assert isinstance(raised.value, ValueError)
    assert raised.value.hint is not None and "roc_auc, pr_auc" in raised.value.hint


def test_metric_of_the_other_task_raises(continuous: tuple[np.ndarray, ...]) -> None:
    y_true, y_pred = continuous
    with pytest.raises(EvaluationError, match="'roc_auc' is a classification metric"):
        evaluate("regression", y_true, y_pred, metrics=["rmse", "roc_auc"])


def test_unknown_task_raises() -> None:
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        metrics_for("ranking", [1, 0], [1, 0])


@pytest.mark.parametrize(
    ("y_true", "y_pred", "y_score", "message"),
    [
        ([0, 1, 2], [0, 1, 1], None, r"binary labels \(bool or 0/1\), got 0, 1, 2"),
        (["no", "yes"], [0, 1], None, "binary labels .* got no, yes"),
        ([0, 1], [0, 1, 1], None, "y_true has 2 rows but y_pred has 3"),
        ([0, 1], [0, 1], [[0.3, 0.7], [0.6, 0.4]], r"y_score must be one-dimensional"),
        ([0, 1], [0, 1], [-0.5, 1.5], r"probabilities in \[0, 1\], got -0.5 to 1.5"),
        ([0, 1], [0, 1], [0.2, float("nan")], "y_score has 1 missing or infinite"),
        ([0, 0, 0], [0, 1, 0], [0.1, 0.6, 0.2], "only class 0 in y_true"),
        ([], [], None, "the holdout is empty"),
    ],
)
def test_inputs_that_cannot_be_evaluated_raise(
    y_true: list[Any], y_pred: list[Any], y_score: Any, message: str
) -> None:
    with pytest.raises(EvaluationError, match=message):
        evaluate("classification", y_true, y_pred, y_score, metrics=["accuracy"])


def test_one_class_holdout_still_gives_label_metrics() -> None:
    # a search fold may hold one class; accuracy is defined there, roc_auc is not
    assert metrics_for("classification", [1, 1], [1, 0], metrics=["accuracy"]) == {"accuracy": 0.5}
    with pytest.raises(EvaluationError, match="'roc_auc'"):
        metrics_for("classification", [1, 1], [1, 0], [0.9, 0.4], ["roc_auc"])


def test_classification_table_has_classes_and_thresholds(binary: tuple[np.ndarray, ...]) -> None:
    y_true, y_pred, y_score = binary
    result = evaluate("classification", y_true, y_pred, y_score, metrics=["precision", "recall"])
    table = result.table
    assert list(table.columns) == ["group", "precision", "recall", "f1", "support", "positive_rate"]
    assert list(table["group"]) == ["class False", "class True"] + [
        f"score >= {t / 10:.1f}" for t in range(1, 10)
    ]
    classes, thresholds = table.iloc[:2], table.iloc[2:].set_index("group")
    assert classes["support"].sum() == result.n == 400
    assert classes.iloc[1]["precision"] == pytest.approx(result.metrics["precision"])
    # y_pred is score >= 0.5, so that threshold row repeats the model's own metrics
    assert thresholds.loc["score >= 0.5", "recall"] == pytest.approx(result.metrics["recall"])
    assert thresholds.loc["score >= 0.5", "positive_rate"] == pytest.approx(y_pred.mean())
    assert thresholds["positive_rate"].is_monotonic_decreasing
    assert thresholds["recall"].is_monotonic_decreasing


def test_classification_table_without_y_score_has_class_rows_only(
    binary: tuple[np.ndarray, ...],
) -> None:
    y_true, y_pred, _ = binary
    result = evaluate("classification", y_true, y_pred)
    assert list(result.table["group"]) == ["class False", "class True"]


def test_regression_table_has_overall_errors_and_deciles(
    continuous: tuple[np.ndarray, ...],
) -> None:
    y_true, y_pred = continuous
    table = evaluate("regression", y_true, y_pred).table.set_index("group")
    error = y_pred - y_true
    assert list(table.columns) == [
        "n",
        "pred_min",
        "pred_max",
        "mean_error",
        "mae",
        "p50_abs_error",
        "p90_abs_error",
        "p99_abs_error",
    ]
    overall = table.loc["all"]
    assert overall["mean_error"] == pytest.approx(error.mean())
    assert overall["p50_abs_error"] == pytest.approx(np.median(np.abs(error)))
    assert overall["p99_abs_error"] == pytest.approx(np.quantile(np.abs(error), 0.99))
    deciles = table.drop(index="all")
    assert list(deciles.index) == [f"decile {i}" for i in range(1, 11)]
    assert deciles["n"].sum() == 300
    assert deciles["pred_min"].is_monotonic_increasing
    assert (deciles["pred_max"].to_numpy()[:-1] <= deciles["pred_min"].to_numpy()[1:]).all()


def test_classification_plots_are_pngs(binary: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    y_true, y_pred, y_score = binary
    out_dir = tmp_path / "plots" / "nested"
    result = evaluate("classification", y_true, y_pred, y_score, out_dir=out_dir, title="m.churn")
    assert set(result.plots) == {"confusion_matrix", "roc_curve", "pr_curve", "calibration"}
    for name, path in result.plots.items():
        assert path == out_dir / f"{name}.png"
        width, height = png_size(path)
        assert width >= 500 and height >= 500
        assert path.stat().st_size > 20_000, f"{name} looks blank"


def test_classification_without_y_score_plots_only_the_confusion_matrix(
    binary: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    y_true, y_pred, _ = binary
    result = evaluate("classification", y_true, y_pred, out_dir=tmp_path)
    assert list(result.plots) == ["confusion_matrix"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion_matrix.png"]


def test_regression_plots_are_pngs(continuous: tuple[np.ndarray, ...], tmp_path: Path) -> None:
    y_true, y_pred = continuous
    result = evaluate("regression", y_true, y_pred, out_dir=tmp_path, title="model.price")
    assert set(result.plots) == {"residuals", "predicted_vs_actual"}
    for name, path in result.plots.items():
        width, height = png_size(path)
        assert width >= 500 and height >= 500
        assert path.stat().st_size > 20_000, f"{name} looks blank"


def test_no_out_dir_means_no_plots(continuous: tuple[np.ndarray, ...]) -> None:
    y_true, y_pred = continuous
    assert evaluate("regression", y_true, y_pred).plots == {}


def test_markdown_reports_metrics_and_table(binary: tuple[np.ndarray, ...]) -> None:
    y_true, y_pred, y_score = binary
    result = evaluate("classification", y_true, y_pred, y_score, title="model.churn")
    text = result.markdown()
    assert text.startswith("## Evaluation: model.churn\n")
    for name, value in result.metrics.items():
        assert f"| {name} | {value:.4f} |" in text
    assert "| group | precision | recall | f1 | support | positive_rate |" in text
    assert "| score >= 0.5 |" in text
    tables = [line for line in text.splitlines() if line.startswith("|")]
    assert all(line.endswith("|") for line in tables)
    header = "| metric | value |"
    assert tables[0] == header and tables[1] == "|---|---:|"


def test_markdown_of_a_regression_lists_deciles(continuous: tuple[np.ndarray, ...]) -> None:
    y_true, y_pred = continuous
    text = evaluate("regression", y_true, y_pred, metrics=["rmse", "mape"]).markdown()
    metrics_part = text.split("###")[0]
    assert "| rmse |" in metrics_part and "| mape |" in metrics_part
    assert "| mae |" not in metrics_part
    assert "| decile 10 |" in text and "| all | 300 |" in text


IMPORT_PROBE = """
import json, sys
import shipyard.training.evaluation as evaluation
{run}
heavy = ("sklearn", "matplotlib", "pandas")
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy))))
"""


def heavy_modules_after(run: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE.format(run=run)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_module_loads_no_heavy_library() -> None:
    assert heavy_modules_after("evaluation.EvaluationError('no holdout')") == []


def test_import_probe_would_notice_heavy_libraries(tmp_path: Path) -> None:
    # guards the test above against a probe that can never fail; and plotting leaves matplotlib's
    # global state alone: no pyplot, the backend setting unchanged (read raw: get_backend()
    # would itself import pyplot to resolve it)
    run = (
        "import matplotlib, pathlib\n"
        "backend = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        f"out = pathlib.Path({str(tmp_path)!r})\n"
        "evaluation.evaluate('classification', [0, 1, 1, 0], [0, 1, 0, 0], [0.2, 0.9, 0.4, 0.3],"
        " out_dir=out)\n"
        "assert (out / 'roc_curve.png').exists()\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
        "assert dict.__getitem__(matplotlib.rcParams, 'backend') == backend, 'backend changed'"
    )
    assert heavy_modules_after(run) == ["matplotlib", "pandas", "sklearn"]


# --- classes by name: string labels, a positive class that sorts first, multiclass ------------

SPECIES = ("setosa", "versicolor", "virginica")


@pytest.fixture(scope="module")
def multiclass() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    n = 300
    codes = rng.integers(0, 3, n)
    logits = rng.normal(0, 1.0, (n, 3))
    logits[np.arange(n), codes] += 1.8
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = np.array(SPECIES, dtype=object)
    return names[codes], names[proba.argmax(axis=1)], proba


def test_multiclass_metrics_agree_with_sklearn(multiclass: tuple[np.ndarray, ...]) -> None:
    y_true, y_pred, proba = multiclass
    names = ["roc_auc", "accuracy", "f1_macro", "f1_weighted", "log_loss"]
    got = metrics_for("classification", y_true, y_pred, proba, names, classes=SPECIES)
    assert got == pytest.approx(
        {
            "roc_auc": sk.roc_auc_score(y_true, proba, multi_class="ovr", labels=list(SPECIES)),
            "accuracy": sk.accuracy_score(y_true, y_pred),
            "f1_macro": sk.f1_score(y_true, y_pred, average="macro"),
            "f1_weighted": sk.f1_score(y_true, y_pred, average="weighted"),
            "log_loss": sk.log_loss(y_true, proba, labels=list(SPECIES)),
        },
        rel=1e-12,
    )
    # without metrics: a multiclass target's defaults
    assert list(metrics_for("classification", y_true, y_pred, proba, classes=SPECIES)) == [
        "roc_auc",
        "accuracy",
        "f1_macro",
        "log_loss",
    ]


@pytest.mark.parametrize("metric", ["f1", "precision", "recall", "pr_auc", "brier"])
def test_a_metric_about_a_positive_class_is_refused_for_multiclass(
    multiclass: tuple[np.ndarray, ...], metric: str
) -> None:
    y_true, y_pred, proba = multiclass
    with pytest.raises(EvaluationError, match=f"'{metric}' is about a positive class"):
        metrics_for("classification", y_true, y_pred, proba, [metric], classes=SPECIES)


def test_multiclass_table_has_a_row_per_class_by_name_and_the_averages(
    multiclass: tuple[np.ndarray, ...],
) -> None:
    y_true, y_pred, proba = multiclass
    result = evaluate("classification", y_true, y_pred, proba, classes=SPECIES)
    table = result.table.set_index("group")
    assert list(result.table.columns) == [
        "group", "precision", "recall", "f1", "support", "roc_auc"
    ]  # fmt: skip
    assert list(table.index) == [f"class {name}" for name in SPECIES] + [
        "macro avg",
        "weighted avg",
    ]
    recall = sk.recall_score(y_true, y_pred, average=None, labels=list(SPECIES))
    assert table["recall"].iloc[:3].tolist() == pytest.approx(recall.tolist())
    assert table.loc["macro avg", "f1"] == pytest.approx(result.metrics["f1_macro"])
    assert table.loc["macro avg", "roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    assert table.loc["class setosa", "support"] == int((y_true == "setosa").sum())
    text = result.markdown()
    assert "3 classes: setosa, versicolor, virginica" in text
    assert "| class virginica |" in text


def test_multiclass_plots_are_the_confusion_matrix_and_one_vs_rest_curves(
    multiclass: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    y_true, y_pred, proba = multiclass
    result = evaluate("classification", y_true, y_pred, proba, out_dir=tmp_path, classes=SPECIES)
    assert list(result.plots) == ["confusion_matrix", "roc_curve", "pr_curve"]  # no calibration
    for path in result.plots.values():
        width, height = png_size(path)
        assert width >= 500 and height >= 500
        assert path.stat().st_size > 20_000


def test_plot_texts_name_the_classes(
    multiclass: tuple[np.ndarray, ...], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The figures' tick labels, legends and axis titles carry class names, not 0/1 or y_pred."""
    from matplotlib.figure import Figure

    texts: list[str] = []
    real = Figure.savefig

    def keep_texts(figure: Figure, *args: Any, **kwargs: Any) -> None:
        for ax in figure.axes:
            texts.extend(t.get_text() for t in [*ax.get_xticklabels(), *ax.get_yticklabels()])
            texts.extend([ax.get_xlabel(), ax.get_ylabel(), ax.get_title(loc="left")])
            if (legend := ax.get_legend()) is not None:
                texts.extend(t.get_text() for t in legend.get_texts())
        real(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep_texts)
    y_true, y_pred, proba = multiclass
    evaluate("classification", y_true, y_pred, proba, out_dir=tmp_path, classes=SPECIES)
    assert set(SPECIES) <= set(texts)  # the confusion matrix's ticks
    assert any(t.startswith("virginica (AUC = ") for t in texts)
    binary_true = np.where(y_true == "setosa", "churned", "stayed")
    binary_pred = np.where(y_pred == "setosa", "churned", "stayed")
    texts.clear()
    evaluate(
        "classification",
        binary_true,
        binary_pred,
        proba[:, 0],
        out_dir=tmp_path / "binary",
        classes=["churned", "stayed"],
        positive="churned",
    )
    assert {"stayed", "churned (positive)"} <= set(texts)
    assert "Predicted probability of churned" in texts
    assert any(t.startswith("predicted churned (FPR") for t in texts)
    assert not [t for t in texts if "y_pred" in t or "class 1" in t or "(negative)" in t]


def test_a_binary_target_whose_positive_class_sorts_first(binary: tuple[np.ndarray, ...]) -> None:
    y_true, y_pred, y_score = binary
    as_words = np.where(y_true, "churned", "stayed"), np.where(y_pred, "churned", "stayed")
    named = evaluate(
        "classification",
        *as_words,
        y_score,
        ["roc_auc", "f1", "precision", "recall", "log_loss"],
        classes=["churned", "stayed"],
        positive="churned",
    )
    as_bool = evaluate(
        "classification",
        y_true,
        y_pred,
        y_score,
        ["roc_auc", "f1", "precision", "recall", "log_loss"],
    )
    assert named.metrics == pytest.approx(as_bool.metrics, rel=1e-12)
    assert list(named.table["group"])[:2] == ["class stayed", "class churned"]
    assert named.table.iloc[2:].equals(as_bool.table.iloc[2:])
    with pytest.raises(EvaluationError, match="not among the classes"):
        evaluate("classification", ["yes", "no"], ["maybe", "no"], classes=["no", "yes"])
