"""The drift engine: profile once, five statistics per window, per-column decisions."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from shipyard.stats.drift import (
    CategoricalProfile,
    DriftProfile,
    NumericProfile,
    build_profile,
    column_statistics,
    drift_report,
    drift_statistics,
)

EPS = 1e-4


def _rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def _data(n: int, seed: int, shift: float = 0.0) -> dict[str, object]:
    rng = _rng(seed)
    labels = np.array(["a", "b", "c", "d"], dtype=object)
    return {
        "x": rng.normal(10.0 + shift, 2.0, n),
        "y": rng.exponential(3.0, n),
        "c": labels[rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])],
    }


def test_identical_distributions_do_not_drift() -> None:
    profile = build_profile(_data(20_000, 1))
    report = drift_report(profile, _data(20_000, 2))
    assert report.drifted == []
    for d in report.columns.values():
        s = d.statistics
        assert s.psi is not None and s.psi < 0.01
        assert s.js_distance is not None and s.js_distance < 0.05
        assert s.chi2_p_value is not None and s.chi2_p_value > 0.001
    x = report.columns["x"].statistics
    assert x.ks_p_value is not None and x.ks_p_value > 0.01
    assert x.wasserstein is not None and x.wasserstein < 0.05


@pytest.mark.parametrize("statistic", ["psi", "ks", "chi2", "js", "wasserstein"])
def test_shifted_column_drifts_under_each_statistic(statistic: str) -> None:
    profile = build_profile(_data(20_000, 1))
    window = _data(20_000, 2)
    window["x"] = np.asarray(window["x"]) + 2.0  # one reference sd
    stat_for = {"x": statistic, "y": statistic}
    report = drift_report(profile, window, statistics=stat_for, default_statistic="psi")
    assert report.columns["x"].drifted, report.columns["x"]
    assert not report.columns["y"].drifted
    assert report.drifted == ["x"]
    assert report.columns["x"].statistic == statistic


def test_shifted_category_mix_drifts() -> None:
    profile = build_profile(_data(20_000, 1))
    rng = _rng(3)
    labels = np.array(["a", "b", "c", "d"], dtype=object)
    window = _data(20_000, 2)
    window["c"] = labels[rng.choice(4, 20_000, p=[0.1, 0.2, 0.3, 0.4])]
    for stat in ("psi", "chi2", "js"):
        assert drift_report(profile, window, default_statistic=stat).drifted == ["c"], stat


def test_psi_matches_a_hand_computed_value_categorical() -> None:
    ref = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20, dtype=object)
    win = np.array(["a"] * 40 + ["b"] * 30 + ["c"] * 30, dtype=object)
    profile = build_profile({"c": ref})
    s = drift_statistics(profile, {"c": win})["c"]
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.3 - 0.2) * math.log(0.3 / 0.2)
    assert s.psi == pytest.approx(expected, rel=1e-12)  # the empty missing bin adds 0
    assert s.psi == pytest.approx(0.0628609, abs=1e-6)


def test_psi_matches_a_hand_computed_value_numeric() -> None:
    ref = np.arange(100, dtype=float)  # 4 bins of 25 values: edges s[25], s[50], s[75]
    profile = build_profile({"x": ref}, n_bins=4)
    p = profile.columns["x"]
    assert isinstance(p, NumericProfile)
    assert p.edges == (25.0, 50.0, 75.0)
    assert p.bin_counts == (25, 25, 25, 25)
    win = np.concatenate([np.arange(25.0), np.arange(75.0, 100.0)])  # halves in the outer bins
    s = drift_statistics(profile, {"x": win})["x"]
    expected = 2 * (0.5 - 0.25) * math.log(0.5 / 0.25) + 2 * (EPS - 0.25) * math.log(EPS / 0.25)
    assert s.psi == pytest.approx(expected, rel=1e-12)


def test_ks_and_wasserstein_equal_scipy_when_sample_is_whole_reference() -> None:
    rng = _rng(11)
    ref = rng.gamma(2.0, 2.0, 3000)
    win = rng.gamma(2.2, 2.0, 2000)
    profile = build_profile({"x": ref})
    s = drift_statistics(profile, {"x": pd.Series(win)})["x"]
    ks = stats.ks_2samp(ref, win)
    assert s.ks_statistic == pytest.approx(ks.statistic, abs=1e-12)
    assert s.ks_p_value == pytest.approx(ks.pvalue, rel=1e-9)
    w = stats.wasserstein_distance(ref, win)
    assert s.wasserstein_raw == pytest.approx(w, rel=1e-9)
    assert s.wasserstein == pytest.approx(w / ref.std(), rel=1e-9)


def test_ks_asymptotic_p_value_equals_scipy_on_large_samples() -> None:
    rng = _rng(12)
    ref = rng.normal(0.0, 1.0, 20_000)
    win = rng.normal(0.02, 1.0, 15_000)
    profile = build_profile({"x": ref}, sample_size=20_000)
    s = drift_statistics(profile, {"x": win})["x"]
    ks = stats.ks_2samp(ref, win)
    assert s.ks_statistic == pytest.approx(ks.statistic, abs=1e-12)
    assert s.ks_p_value == pytest.approx(ks.pvalue, rel=1e-6)
    assert s.wasserstein_raw == pytest.approx(stats.wasserstein_distance(ref, win), rel=1e-9)


def test_ks_p_value_on_very_large_samples_stays_within_half_a_percent_of_scipy() -> None:
    rng = _rng(17)
    ref = rng.normal(0.0, 1.0, 300_000)
    win = rng.normal(0.004, 1.0, 300_000)
    profile = build_profile({"x": ref}, sample_size=300_000)
    s = drift_statistics(profile, {"x": win})["x"]
    ks = stats.ks_2samp(ref, win)
    assert s.ks_statistic == pytest.approx(ks.statistic, abs=1e-12)
    assert 1e-4 < ks.pvalue < 0.9
    assert s.ks_p_value == pytest.approx(ks.pvalue, rel=5e-3)


def test_ks_and_wasserstein_equal_scipy_with_ties() -> None:
    rng = _rng(13)
    for _ in range(50):
        ref = rng.integers(0, 6, int(rng.integers(1, 80))).astype(float)
        win = rng.integers(0, 8, int(rng.integers(1, 80))).astype(float)
        s = drift_statistics(build_profile({"x": ref}), {"x": win})["x"]
        assert s.ks_statistic == pytest.approx(stats.ks_2samp(ref, win).statistic, abs=1e-12)
        assert s.wasserstein_raw == pytest.approx(stats.wasserstein_distance(ref, win), abs=1e-9)


def test_sketch_stays_close_to_the_full_reference() -> None:
    rng = _rng(14)
    ref = rng.lognormal(0.0, 0.5, 200_000)
    win = rng.lognormal(0.05, 0.5, 50_000)
    s = drift_statistics(build_profile({"x": ref}, sample_size=2000), {"x": win})["x"]
    assert s.ks_statistic == pytest.approx(stats.ks_2samp(ref, win).statistic, abs=1.0 / 2000)
    w = stats.wasserstein_distance(ref, win)
    assert s.wasserstein_raw == pytest.approx(w, rel=0.05)


def test_js_distance_is_within_zero_and_one() -> None:
    a = np.array(["a"] * 100, dtype=object)
    b = np.array(["b"] * 100, dtype=object)
    disjoint = drift_statistics(build_profile({"c": a}), {"c": b})["c"]
    assert disjoint.js_distance == pytest.approx(1.0)
    same = drift_statistics(build_profile({"c": a}), {"c": a})["c"]
    assert same.js_distance == pytest.approx(0.0, abs=1e-12)
    rng = _rng(15)
    for _ in range(20):
        ref = rng.normal(0, 1, 500)
        win = rng.normal(rng.uniform(-5, 5), rng.uniform(0.1, 3), 300)
        js = drift_statistics(build_profile({"x": ref}), {"x": win})["x"].js_distance
        assert js is not None and 0.0 <= js <= 1.0


def test_js_uses_base_two_on_the_bins() -> None:
    ref = np.array(["a"] * 60 + ["b"] * 40, dtype=object)
    win = np.array(["a"] * 30 + ["b"] * 70, dtype=object)
    s = drift_statistics(build_profile({"c": ref}), {"c": win})["c"]
    assert s.js_distance == pytest.approx(jensenshannon([0.6, 0.4, 0], [0.3, 0.7, 0], base=2))


def test_nan_share_is_its_own_bin() -> None:
    rng = _rng(16)
    ref = rng.normal(0, 1, 10_000)
    win = rng.normal(0, 1, 10_000)
    win[:3000] = np.nan
    win[3000:3010] = np.inf  # non-finite counts as missing too
    profile = build_profile({"x": ref})
    s = drift_statistics(profile, {"x": win})["x"]
    assert s.missing_reference == 0.0
    assert s.missing_window == pytest.approx(0.301)
    assert s.psi is not None and s.psi > 0.2  # 30% missing against none
    assert s.ks_p_value is not None and s.ks_p_value > 0.001  # finite values alike
    assert not any(isinstance(v, float) and math.isnan(v) for v in vars(s).values())
    ref_nan = ref.copy()
    ref_nan[:2000] = np.nan
    p2 = build_profile({"x": ref_nan})
    assert p2.columns["x"].missing == 2000
    same = drift_statistics(p2, {"x": ref_nan})["x"]
    assert same.psi == pytest.approx(0.0, abs=1e-12)


def test_missing_categories_and_unseen_categories() -> None:
    ref = pd.Series(["a"] * 50 + ["b"] * 40 + [None] * 10)
    win = pd.Series(["a"] * 40 + ["b"] * 30 + ["new1"] * 10 + ["new2"] * 5 + [np.nan] * 15)
    profile = build_profile({"c": ref})
    p = profile.columns["c"]
    assert isinstance(p, CategoricalProfile)
    assert p.categories == ("a", "b") and p.missing == 10 and p.other == 0
    s = drift_statistics(profile, {"c": win})["c"]
    assert s.unseen == 15
    assert s.missing_window == pytest.approx(0.15)
    # bins: a, b, new1, new2 (each unseen category its own bin, reference share 0), missing
    r = np.array([0.5, 0.4, 0.0, 0.0, 0.1])
    c = np.array([0.4, 0.3, 0.1, 0.05, 0.15])
    rp, cp = np.clip(r, EPS, None), np.clip(c, EPS, None)
    assert s.psi == pytest.approx(float(np.sum((cp - rp) * np.log(cp / rp))), rel=1e-12)
    assert s.js_distance == pytest.approx(jensenshannon(r, c, base=2))
    assert s.ks_statistic is None and s.wasserstein is None


def test_truncated_profile_lumps_rare_and_unseen_into_other() -> None:
    ref = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20, dtype=object)
    profile = build_profile({"c": ref}, top_k=2)
    p = profile.columns["c"]
    assert isinstance(p, CategoricalProfile)
    assert p.categories == ("a", "b") and p.other == 20
    s = drift_statistics(profile, {"c": ref})["c"]
    assert s.psi == pytest.approx(0.0, abs=1e-12)
    win = np.array(["a"] * 50 + ["b"] * 30 + ["zzz"] * 20, dtype=object)
    assert drift_statistics(profile, {"c": win})["c"].psi == pytest.approx(0.0, abs=1e-12)


def test_empty_window_says_so_and_never_drifts() -> None:
    profile = build_profile(_data(1000, 1))
    empty = {"x": np.array([]), "y": pd.Series([], dtype=float), "c": np.array([], dtype=object)}
    report = drift_report(profile, empty, default_statistic="psi")
    for d in report.columns.values():
        assert d.statistics.empty and d.value is None and not d.drifted
        assert d.statistics.note is not None and "empty window" in d.statistics.note
    assert report.drifted == []


def test_all_missing_window_has_binned_statistics_but_no_ks() -> None:
    profile = build_profile({"x": _rng(1).normal(0, 1, 1000)})
    s = drift_statistics(profile, {"x": np.full(100, np.nan)})["x"]
    assert s.psi is not None and s.psi > 1.0
    assert s.ks_statistic is None and s.ks_p_value is None and s.wasserstein is None
    assert s.note is not None and "no finite values in the window" in s.note
    report = drift_report(profile, {"x": np.full(100, np.nan)}, default_statistic="ks")
    assert not report.columns["x"].drifted  # no value, no verdict


def test_profile_json_round_trip() -> None:
    data = _data(5000, 1)
    data["x"] = np.where(_rng(2).random(5000) < 0.1, np.nan, np.asarray(data["x"]))
    profile = build_profile(data, categorical=["y"], top_k=50)
    text = profile.to_json()
    back = DriftProfile.from_json(text)
    assert back == profile
    assert back.to_json() == text
    window = _data(3000, 5)
    assert drift_statistics(back, window) == drift_statistics(profile, window)
    with pytest.raises(ValueError, match="version"):
        DriftProfile.from_dict({**json.loads(text), "version": 99})
    with pytest.raises(ValueError, match="not a drift profile"):
        DriftProfile.from_dict({"version": 1, "columns": {"x": {"kind": "numeric"}}})


def test_profile_size_is_bounded_for_a_million_rows() -> None:
    rng = _rng(3)
    n = 1_000_000
    labels = np.array([f"v{i}" for i in range(500)], dtype=object)
    profile = build_profile(
        {
            "x": rng.normal(0, 1, n),
            "k": rng.integers(0, 3, n),
            "c": labels[rng.integers(0, 500, n)],
        },
        categorical=["k"],
    )
    x = profile.columns["x"]
    c = profile.columns["c"]
    assert isinstance(x, NumericProfile) and isinstance(c, CategoricalProfile)
    assert len(x.sample) == 5000 and len(x.edges) == 9 and x.count == n
    assert len(c.categories) == 100 and c.other > 0
    assert len(profile.to_json()) < 150_000


def test_integer_column_with_point_masses_dedups_edges() -> None:
    ref = np.array([0] * 700 + [1] * 200 + [2] * 100)
    profile = build_profile({"k": ref}, n_bins=10)
    p = profile.columns["k"]
    assert isinstance(p, NumericProfile)
    assert p.edges == (0.0, 1.0, 2.0) and p.bin_counts == (0, 700, 200, 100)  # (-inf, 0) empty
    assert drift_statistics(profile, {"k": ref})["k"].psi == pytest.approx(0.0, abs=1e-12)


def test_thresholds_and_defaults_per_column() -> None:
    profile = build_profile(_data(5000, 1))
    window = _data(5000, 2)
    report = drift_report(
        profile,
        window,
        statistics={"x": "ks", "c": "js"},
        thresholds={"c": 0.0},
        default_statistic="psi",
        default_threshold=0.3,
    )
    assert report.columns["x"].threshold == 0.05  # ks default, a p-value
    assert report.columns["y"].threshold == 0.3 and report.columns["y"].statistic == "psi"
    assert report.columns["c"].threshold == 0.0 and report.columns["c"].drifted  # js >= 0
    assert report.columns["x"].value == report.columns["x"].statistics.ks_p_value


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"statistics": {"c": "ks"}}, "categorical"),
        ({"statistics": {"x": "hellinger"}}, "unknown statistic"),
        ({"statistics": {"nope": "psi"}}, "not in the profile"),
        ({"thresholds": {"x": -1.0}}, "threshold"),
    ],
)
def test_bad_report_arguments_raise(kwargs: dict[str, object], match: str) -> None:
    profile = build_profile(_data(500, 1))
    with pytest.raises(ValueError, match=match):
        drift_report(profile, _data(500, 2), **kwargs)  # type: ignore[arg-type]


def test_bad_profile_arguments_raise() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        build_profile({})
    with pytest.raises(ValueError, match="n_bins"):
        build_profile({"x": [1.0]}, n_bins=1)
    with pytest.raises(ValueError, match="unknown columns"):
        build_profile({"x": [1.0]}, categorical=["y"])
    profile = build_profile({"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="window lacks"):
        drift_statistics(profile, {"z": [1.0]})


def test_column_statistics_accepts_lists() -> None:
    profile = build_profile({"x": [1.0, 2.0, 3.0, 4.0]})
    s = column_statistics("x", profile.columns["x"], [1.0, 2.0, 3.0, 4.0])
    assert s.ks_statistic == 0.0 and s.psi == pytest.approx(0.0)
