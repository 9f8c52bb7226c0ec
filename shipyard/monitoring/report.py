"""A monitor run for people: text (CLI), markdown with plots (Prefect artifact), an HTML page,
and its Prometheus gauges."""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Any

from shipyard.compiler.monitoring import PREDICTION, MonitorStep
from shipyard.figures import save_png
from shipyard.metrics import FlowRunMetrics
from shipyard.monitoring.judge import Judgement

STATUS_TEXT = {
    "ok": "no drift",
    "drift": "DRIFT",
    "degraded": "degraded",
    "not_judged": "not judged",
}


def _n(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def text(step: MonitorStep, j: Judgement) -> str:
    status = j.status(step.drift_share)
    lines = [
        f"monitor {step.name}: {STATUS_TEXT[status]} "
        f"({j.rows} predictions, {_when(j.start)} .. {_when(j.end)})",
    ]
    if j.reference_version is not None:
        lines.append(f"reference: {step.registered_name} version {j.reference_version}")
    for problem in j.problems:
        lines.append(f"  ! {problem}")
    if j.drift is not None:
        lines.append(
            f"input drift: {len(j.drifted)} of {len(j.drift.columns)} features "
            f"({j.drift_share:.0%}; the service drifts above {step.drift_share:.0%})"
        )
        lines.append(
            f"  {'feature':<20} {'statistic':<12} {'value':>10} {'threshold':>10}  drifted"
            "  missing (training -> window)"
        )
        for name, column in j.drift.columns.items():
            stats = column.statistics
            missing = (
                f"{stats.missing_reference:.1%} -> {stats.missing_window:.1%}"
                if stats.missing_window is not None
                else "-"
            )
            lines.append(
                f"  {name:<20} {column.statistic:<12} {_n(column.value):>10} "
                f"{column.threshold:>10g}  {'yes' if column.drifted else 'no ':<7}  {missing}"
            )
    for variant, column in j.prediction_drift.items():
        lines.append(
            f"prediction drift ({variant}): {column.statistic} {_n(column.value)} "
            f"(threshold {column.threshold:g}): {'DRIFTED' if column.drifted else 'no'}"
        )
    if j.quality is not None:
        failed = j.quality.failed
        lines.append(
            f"data quality: {len(j.quality.outcomes) - len(failed)} of "
            f"{len(j.quality.outcomes)} expectations met on live inputs"
        )
        for outcome in failed:
            lines.append(f"  failed: {outcome.rule}")
    for p in j.performance:
        judged = "too few labels" if p.ok is None else ("ok" if p.ok else "BELOW LIMIT")
        lines.append(
            f"performance ({p.variant}): {p.metric} {_n(p.value)} on {p.labels} labels: {judged}"
        )
    for f in j.freshness:
        age = "never" if f.age_seconds is None else f"{f.age_seconds / 3600:.1f} h old"
        lines.append(
            f"freshness {f.view}: {age} (max {f.max_age_seconds / 3600:.1f} h): "
            + ("ok" if f.ok else "STALE")
        )
    return "\n".join(lines)


def plot(step: MonitorStep, j: Judgement, path: Path) -> bytes | None:
    """Each feature's statistic against its threshold; the window's distribution against the
    reference for the most drifted features and the predictions."""
    if j.drift is None or j.profile is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    shown = sorted(
        j.drift.columns.values(), key=lambda c: _severity(c.statistic, c.value, c.threshold)
    )[-3:]
    columns = [*[c.column for c in reversed(shown)]]
    if j.prediction_drift and PREDICTION in j.profile.columns:
        columns.append(PREDICTION)
    figure, axes = plt.subplots(1 + len(columns), 1, figsize=(8, 3 + 2.4 * len(columns)))
    axes = np.atleast_1d(axes)
    names = list(j.drift.columns)
    ratios = [_severity(c.statistic, c.value, c.threshold) for c in j.drift.columns.values()]
    colours = ["#e63946" if c.drifted else "#457b9d" for c in j.drift.columns.values()]
    axes[0].barh(names, ratios, color=colours)
    axes[0].axvline(1.0, color="#555", linestyle=":", linewidth=1)
    axes[0].set_xlabel("statistic / threshold (p-values: threshold / p); drifted at >= 1")
    axes[0].set_title(f"monitor {step.name}: {STATUS_TEXT[j.status(step.drift_share)]}")
    window = j.window
    for axis, name in zip(axes[1:], columns, strict=True):
        reference = j.profile.columns[name]
        values = (
            [v for outs in window.outputs.values() for v in outs]
            if name == PREDICTION and window is not None
            else (window.columns.get(name, []) if window is not None else [])
        )
        title = "predictions" if name == PREDICTION else name
        if reference.kind == "numeric":
            edges = list(getattr(reference, "edges", ()))
            counts = np.array(getattr(reference, "bin_counts", ()), dtype=float)
            finite = np.array(
                [float(v) for v in values if isinstance(v, int | float) and v == v], dtype=float
            )
            window_counts = np.bincount(
                np.searchsorted(np.array(edges), finite, side="right"), minlength=len(counts)
            )[: len(counts)]
            labels = [f"<{edges[0]:.3g}"] + [f">={e:.3g}" for e in edges] if edges else ["all"]
            _bars(axis, labels, counts, window_counts.astype(float))
        else:
            categories = list(getattr(reference, "categories", ()))
            counts = np.array(getattr(reference, "category_counts", ()), dtype=float)
            seen = [str(v) for v in values if v is not None]
            window_counts = np.array([seen.count(c) for c in categories], dtype=float)
            _bars(axis, categories, counts, window_counts)
        axis.set_title(title, fontsize=9)
    return save_png(figure, path)


def _bars(axis: Any, labels: list[str], reference: Any, window: Any) -> None:
    import numpy as np

    x = np.arange(len(labels))
    ref = reference / max(reference.sum(), 1)
    win = window / max(window.sum(), 1)
    axis.bar(x - 0.2, ref, width=0.4, label="reference (training)", color="#a8dadc")
    axis.bar(x + 0.2, win, width=0.4, label="window (production)", color="#e63946")
    axis.set_xticks(x, labels, rotation=30, fontsize=7)
    axis.set_ylabel("share")
    axis.legend(fontsize=7)


def _severity(statistic: str, value: float | None, threshold: float) -> float:
    """How far past its threshold a statistic is: >= 1 is drifted, for distances and p-values."""
    if value is None:
        return 0.0
    if statistic in ("ks", "chi2"):
        return min(threshold / max(value, 1e-12), 100.0)
    return value / threshold if threshold else 0.0


def markdown(step: MonitorStep, j: Judgement, png: bytes | None, actions: list[str]) -> str:
    body = ["```", text(step, j), "```"]
    if actions:
        body += ["", "**Actions:**", *[f"- {a}" for a in actions]]
    if png:
        encoded = base64.b64encode(png).decode()
        body += ["", f"![drift per feature](data:image/png;base64,{encoded})"]
    return "\n".join([f"# Monitor {step.name}", "", *body])


def html_page(step: MonitorStep, j: Judgement, png: bytes | None, actions: list[str]) -> str:
    image = (
        f'<img alt="drift" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else ""
    )
    done = "".join(f"<li>{html.escape(a)}</li>" for a in actions)
    return (
        "<!doctype html><meta charset='utf-8'>"
        f"<title>Monitor {html.escape(step.name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em}</style>"
        f"<h1>Monitor {html.escape(step.name)}</h1><pre>{html.escape(text(step, j))}</pre>"
        + (f"<h2>Actions</h2><ul>{done}</ul>" if done else "")
        + image
    )


def observe(metrics: FlowRunMetrics, step: MonitorStep, j: Judgement) -> None:
    """The run's findings as gauges (names in docs/monitoring.md; rules in the observability
    stack read them)."""
    o = metrics.observe
    o("monitor_window_rows", j.rows, "Predictions in the monitor's last window.")
    o("monitor_healthy", 0.0 if j.problems else 1.0, "1 if the monitor could judge everything.")
    o("monitor_last_run_timestamp_seconds", time.time(), "Unix time the monitor last ran.")
    o(
        "monitor_drift_detected",
        1.0 if j.drift_detected(step.drift_share) else 0.0,
        "1 if the service's inputs or predictions drifted in the last window.",
    )
    if j.drift is not None:
        o("monitor_drifted_share", j.drift_share, "Share of the service's features that drifted.")
        for name, column in j.drift.columns.items():
            labels = {"feature": name, "statistic": column.statistic}
            if column.value is not None:
                o("monitor_feature_drift", column.value, "Decision statistic per feature.", labels)
            o(
                "monitor_feature_drift_threshold",
                column.threshold,
                "Threshold of the decision statistic per feature.",
                labels,
            )
            o(
                "monitor_feature_drifted",
                1.0 if column.drifted else 0.0,
                "1 if the feature drifted in the last window.",
                {"feature": name},
            )
    for variant, column in j.prediction_drift.items():
        if column.value is not None:
            o(
                "monitor_prediction_drift",
                column.value,
                "Decision statistic of the model's output against its training reference.",
                {"variant": variant, "statistic": column.statistic},
            )
    if j.quality is not None:
        o("monitor_quality_expectations", len(j.quality.outcomes), "Expectations run on inputs.")
        o(
            "monitor_quality_failed_expectations",
            len(j.quality.failed),
            "Expectations the live inputs failed.",
        )
    for p in j.performance:
        labels = {"variant": p.variant}
        o("monitor_performance_labels", p.labels, "Labelled predictions in the window.", labels)
        if p.value is not None:
            o(
                "monitor_performance",
                p.value,
                "Model metric on labelled live predictions.",
                {"variant": p.variant, "metric": p.metric},
            )
    for f in j.freshness:
        labels = {"view": f.view}
        if f.age_seconds is not None:
            o("monitor_feature_age_seconds", f.age_seconds, "Age of the online features.", labels)
        o(
            "monitor_feature_max_age_seconds",
            f.max_age_seconds,
            "Oldest acceptable online features (0: no limit).",
            labels,
        )
