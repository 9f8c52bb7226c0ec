"""Data drift: a reference profile built once, compared per column against a current window.

`build_profile` reduces the training data to a small JSON-serialisable `DriftProfile` (it can be
stored with a model version); `column_statistics` / `drift_statistics` compare a window against
it with all five statistics at once, and `drift_report` turns one chosen statistic per column
into a drifted flag. The reference is never re-read: the cost of a window grows with the window
only (one sort per numeric column, one hash count per categorical column). Pure numpy and scipy;
pandas Series are accepted (duck-typed), nothing here imports pandas or does I/O.

Binning (numeric columns). Missing means NaN or +-inf. With the n finite reference values
sorted as s, the inner edges are the order statistics s[floor(k n / n_bins)], k = 1 ..
n_bins - 1 (the smallest value of the upper 1 - k / n_bins share), deduplicated. Bin 0 is
(-inf, e_1), bin i is [e_i, e_i+1), the last is [e_last, +inf), so each bin holds about 1 /
n_bins of the reference, a point mass stays in one bin (integer data get fewer, wider bins,
never empty interpolated ones), and a window value outside the reference range lands in an outer
bin. The missing share is one more bin. The stored counts are the reference's actual counts.

Sample (numeric columns). KS and Wasserstein compare the window with a sorted quantile sketch of
the reference: with n finite reference values and `sample_size` m, the whole sorted reference
if n <= m, else the order statistics s[floor((i + 0.5) n / m)], i = 0 .. m - 1. Its ECDF is
within 1/m of the reference's, so KS D moves by at most about 1/m; the KS p-value uses the
reference's real n. Both ignore missing values (the binned statistics see them).

Categories. Values are compared by `str(value)`; None, float NaN, pandas NA/NaT are missing (one
bin). The profile keeps the `top_k` most frequent categories with their counts and lumps the rest
into "other". A window value outside the stored categories counts as "other" when the profile
has an "other" share (it may be a rare reference category); when the profile holds every
reference category, each unseen category is a bin of its own with reference share 0.

Statistics, on the bins (numeric: quantile bins + missing; categorical: categories + other +
missing + unseen), with reference shares r_i and window shares c_i:

* PSI = sum_i (c_i - r_i) ln(c_i / r_i), shares floored at `PSI_EPSILON` (1e-4).
* chi-square: the 2 x K homogeneity test (`scipy.stats.chi2_contingency`, bins empty in both
  dropped) on reference and window counts; both are samples, so it is not a goodness-of-fit.
* Jensen-Shannon distance, base 2: sqrt of the JS divergence in bits, in [0, 1]
  (`scipy.spatial.distance.jensenshannon(r, c, base=2)`).

and, numeric only, on the finite values:

* Kolmogorov-Smirnov: D = sup_x |F_ref(x) - F_win(x)| against the stored sample, computed as
  `scipy.stats.ks_2samp` does (both ECDFs at every point of either sample); p-value as scipy's
  `method="auto"`: exact (scipy itself) when both sizes are <= 10,000, else Smirnov's asymptotic
  `kstwo.sf(D, en)`, en = round(n m / (n + m)). Above en = 100,000, where `kstwo.sf` costs
  0.05-0.8 s a call, Stephens' corrected limit Q_KS((sqrt(en) + 0.12 + 0.11 / sqrt(en)) D)
  (`kstwobign.sf`) replaces it: relative error < 0.5% at en = 100,000, shrinking with en.
* Wasserstein-1 = integral |F_ref(x) - F_win(x)| dx against the stored sample (equal to
  `scipy.stats.wasserstein_distance`), reported raw and divided by the reference standard
  deviation (Evidently's normalisation; the decision statistic "wasserstein" is the normalised
  one; a constant reference divides by 1).

An empty window (no rows) gives a result that says so (`empty=True`, every statistic None) and
is never drifted; no statistic is ever NaN: what cannot be computed is None with a note.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial.distance import jensenshannon

from shipyard.stats.analysis import PSI_EPSILON

Array = npt.NDArray[np.float64]
Statistic = Literal["psi", "ks", "chi2", "js", "wasserstein"]
STATISTICS: tuple[Statistic, ...] = ("psi", "ks", "chi2", "js", "wasserstein")
P_VALUE_STATISTICS = frozenset({"ks", "chi2"})
"""Statistics decided on a p-value: drifted when p < threshold. The others: value >= threshold."""

DEFAULT_THRESHOLDS: Mapping[str, float] = {
    "psi": 0.2,
    "ks": 0.05,
    "chi2": 0.05,
    "js": 0.1,
    "wasserstein": 0.1,
}
"""Threshold of a statistic when neither `thresholds` nor `default_threshold` gives one."""

PROFILE_VERSION = 1
OTHER = "__other__"
_EXACT_KS_MAX_N = 10_000  # scipy ks_2samp method="auto": exact up to this size
_KSTWO_MAX_EN = 100_000  # above: Stephens' approximation instead of kstwo.sf (see docstring)


@dataclass(frozen=True)
class NumericProfile:
    """Reference summary of one numeric column (see the module docstring for the binning).

    Attributes:
        count: Finite reference values.
        missing: NaN or +-inf reference values.
        edges: Inner bin edges, strictly increasing (len(edges) + 1 bins).
        bin_counts: Reference count per bin.
        sample: Sorted quantile sketch of the finite values (the whole column if small).
        mean: Mean of the finite values, or None without any.
        sd: Population standard deviation of the finite values, or None without any.
    """

    count: int
    missing: int
    edges: tuple[float, ...]
    bin_counts: tuple[int, ...]
    sample: tuple[float, ...]
    mean: float | None
    sd: float | None
    kind: Literal["numeric"] = "numeric"


@dataclass(frozen=True)
class CategoricalProfile:
    """Reference summary of one categorical column.

    Attributes:
        count: Non-missing reference values.
        missing: Missing reference values (None, NaN, NA).
        categories: The top-k categories (as strings), most frequent first.
        category_counts: Reference count per category.
        other: Reference values in categories beyond the top k.
    """

    count: int
    missing: int
    categories: tuple[str, ...]
    category_counts: tuple[int, ...]
    other: int
    kind: Literal["categorical"] = "categorical"


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class DriftProfile:
    """The reference profile of a data set: per column, what a window is compared against.

    Attributes:
        columns: Column name to its profile.
        n_bins: Requested quantile bins per numeric column (fewer after deduplication).
        sample_size: Bound on the stored sample per numeric column.
        top_k: Bound on the stored categories per categorical column.
    """

    columns: Mapping[str, ColumnProfile]
    n_bins: int
    sample_size: int
    top_k: int
    version: int = PROFILE_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists, ints, floats, strings)."""
        cols: dict[str, Any] = {}
        for name, p in self.columns.items():
            if isinstance(p, NumericProfile):
                cols[name] = {
                    "kind": p.kind,
                    "count": p.count,
                    "missing": p.missing,
                    "edges": list(p.edges),
                    "bin_counts": list(p.bin_counts),
                    "sample": list(p.sample),
                    "mean": p.mean,
                    "sd": p.sd,
                }
            else:
                cols[name] = {
                    "kind": p.kind,
                    "count": p.count,
                    "missing": p.missing,
                    "categories": list(p.categories),
                    "category_counts": list(p.category_counts),
                    "other": p.other,
                }
        return {
            "version": self.version,
            "n_bins": self.n_bins,
            "sample_size": self.sample_size,
            "top_k": self.top_k,
            "columns": cols,
        }

    def to_json(self) -> str:
        """Compact JSON text; `DriftProfile.from_json` reads it back exactly."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftProfile:
        """Read a profile written by `to_dict`.

        Raises:
            ValueError: An unknown version or column kind, or a missing or inconsistent field.
        """
        if data.get("version") != PROFILE_VERSION:
            raise ValueError(
                f"drift profile version {data.get('version')!r} is not supported "
                f"(expected {PROFILE_VERSION})"
            )
        try:
            columns: dict[str, ColumnProfile] = {}
            for name, c in data["columns"].items():
                if c["kind"] == "numeric":
                    num = NumericProfile(
                        count=int(c["count"]),
                        missing=int(c["missing"]),
                        edges=tuple(float(x) for x in c["edges"]),
                        bin_counts=tuple(int(x) for x in c["bin_counts"]),
                        sample=tuple(float(x) for x in c["sample"]),
                        mean=None if c["mean"] is None else float(c["mean"]),
                        sd=None if c["sd"] is None else float(c["sd"]),
                    )
                    if len(num.bin_counts) != len(num.edges) + 1:
                        raise ValueError(f"column {name!r}: need len(edges) + 1 bin counts")
                    p: ColumnProfile = num
                elif c["kind"] == "categorical":
                    p = CategoricalProfile(
                        count=int(c["count"]),
                        missing=int(c["missing"]),
                        categories=tuple(str(x) for x in c["categories"]),
                        category_counts=tuple(int(x) for x in c["category_counts"]),
                        other=int(c["other"]),
                    )
                    if len(p.categories) != len(p.category_counts):
                        raise ValueError(f"column {name!r}: one count per category needed")
                else:
                    raise ValueError(f"column {name!r}: unknown kind {c['kind']!r}")
                columns[str(name)] = p
            return cls(
                columns=columns,
                n_bins=int(data["n_bins"]),
                sample_size=int(data["sample_size"]),
                top_k=int(data["top_k"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a drift profile: {exc!r}") from exc

    @classmethod
    def from_json(cls, text: str) -> DriftProfile:
        """Read a profile written by `to_json`."""
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class ColumnStatistics:
    """All five statistics of one column, window against the reference profile.

    Statistics that do not apply (KS and Wasserstein of a categorical column) or cannot be
    computed (no finite values on one side, an empty window) are None and `note` says why.

    Attributes:
        column: Column name.
        kind: "numeric" or "categorical".
        n_reference: Reference rows (missing included).
        n_window: Window rows (missing included).
        missing_reference: Missing share of the reference, in [0, 1].
        missing_window: Missing share of the window, or None for an empty window.
        empty: True when the window has no rows.
        psi: Population stability index over the bins.
        chi2_statistic: Chi-square statistic of the 2 x K homogeneity test.
        chi2_p_value: Its p-value.
        js_distance: Jensen-Shannon distance, base 2, in [0, 1].
        ks_statistic: Two-sample KS D against the stored sample.
        ks_p_value: Its p-value (see the module docstring).
        wasserstein: Wasserstein-1 distance divided by the reference standard deviation.
        wasserstein_raw: Wasserstein-1 distance in the column's units.
        unseen: Window values in categories the profile does not hold (categorical).
        note: Why a statistic is None, or None.
    """

    column: str
    kind: Literal["numeric", "categorical"]
    n_reference: int
    n_window: int
    missing_reference: float
    missing_window: float | None
    empty: bool
    psi: float | None = None
    chi2_statistic: float | None = None
    chi2_p_value: float | None = None
    js_distance: float | None = None
    ks_statistic: float | None = None
    ks_p_value: float | None = None
    wasserstein: float | None = None
    wasserstein_raw: float | None = None
    unseen: int = 0
    note: str | None = None

    def value(self, statistic: str) -> float | None:
        """The decision value of `statistic`: the p-value for "ks" and "chi2"."""
        return {
            "psi": self.psi,
            "ks": self.ks_p_value,
            "chi2": self.chi2_p_value,
            "js": self.js_distance,
            "wasserstein": self.wasserstein,
        }[statistic]


@dataclass(frozen=True)
class ColumnDrift:
    """The drift decision of one column.

    Attributes:
        column: Column name.
        statistic: The deciding statistic ("psi", "ks", "chi2", "js", "wasserstein").
        value: Its value (the p-value for "ks" and "chi2"), or None (empty window, no data).
        threshold: Drifted when value >= threshold, or p-value < threshold for "ks"/"chi2".
        drifted: The decision; never True without a value.
        statistics: All five statistics of the column.
    """

    column: str
    statistic: str
    value: float | None
    threshold: float
    drifted: bool
    statistics: ColumnStatistics


@dataclass(frozen=True)
class DriftReport:
    """Per-column drift decisions of one window.

    Attributes:
        columns: Column name to its decision, in profile order.
    """

    columns: Mapping[str, ColumnDrift] = field(default_factory=dict)

    @property
    def drifted(self) -> list[str]:
        """Names of the drifted columns, sorted."""
        return sorted(c for c, d in self.columns.items() if d.drifted)


# ------------------------------------------------------------------------------ profile


def build_profile(
    columns: Mapping[str, Any],
    *,
    categorical: Iterable[str] = (),
    n_bins: int = 10,
    sample_size: int = 5000,
    top_k: int = 100,
) -> DriftProfile:
    """Summarise reference data once into a bounded, JSON-serialisable profile.

    A column is numeric when its dtype is integer or float (pandas nullable ones included) and
    it is not named in `categorical`; bool, string, object and category columns are
    categorical. Size per column: at most `n_bins` edges and counts and `sample_size` floats
    (numeric), `top_k` categories (categorical), whatever the number of rows.

    Args:
        columns: Column name to values (numpy array, pandas Series, or a sequence).
        categorical: Columns to treat as categorical even if numeric.
        n_bins: Quantile bins per numeric column, at least 2.
        sample_size: Bound on the stored sorted sample per numeric column, at least 10.
        top_k: Bound on the stored categories per categorical column, at least 1.

    Raises:
        ValueError: No columns, a parameter out of range, or `categorical` naming an unknown
            column.
    """
    if not columns:
        raise ValueError("build_profile needs at least one column")
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    if sample_size < 10:
        raise ValueError(f"sample_size must be at least 10, got {sample_size}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    cat = set(categorical)
    unknown = sorted(cat - set(columns))
    if unknown:
        raise ValueError(f"categorical names unknown columns: {', '.join(unknown)}")
    out: dict[str, ColumnProfile] = {}
    for name, values in columns.items():
        if name not in cat and _is_numeric(values):
            out[name] = _numeric_profile(_as_float(values), n_bins, sample_size)
        else:
            out[name] = _categorical_profile(_value_counts(values), top_k)
    return DriftProfile(columns=out, n_bins=n_bins, sample_size=sample_size, top_k=top_k)


def _is_numeric(values: Any) -> bool:
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        dtype = np.asarray(values).dtype
    return getattr(dtype, "kind", "O") in "iuf"


def _as_float(values: Any) -> Array:
    if hasattr(values, "to_numpy"):
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        arr = np.asarray(values, dtype=np.float64)
    return np.ravel(arr)


def _numeric_profile(values: Array, n_bins: int, sample_size: int) -> NumericProfile:
    finite = values[np.isfinite(values)]
    missing = int(values.size - finite.size)
    n = int(finite.size)
    if n == 0:
        return NumericProfile(0, missing, (), (0,), (), None, None)
    s = np.sort(finite)
    ranks = np.floor(np.arange(1, n_bins) * n / n_bins + 1e-9).astype(np.int64)
    edges = np.unique(s[np.minimum(ranks, n - 1)])
    counts = _sorted_bin_counts(s, edges)
    if n <= sample_size:
        sample = s
    else:
        sample = s[((np.arange(sample_size) + 0.5) * n / sample_size).astype(np.int64)]
    return NumericProfile(
        count=n,
        missing=missing,
        edges=tuple(edges.tolist()),
        bin_counts=tuple(counts.tolist()),
        sample=tuple(sample.tolist()),
        mean=float(s.mean()),
        sd=float(s.std()),
    )


def _sorted_bin_counts(s: Array, edges: Array) -> npt.NDArray[np.int64]:
    """Counts per bin (-inf, e1), [e1, e2), ..., [e_last, inf) of a sorted array."""
    cuts = np.searchsorted(s, edges, side="left")
    return np.diff(np.concatenate(([0], cuts, [s.size]))).astype(np.int64)


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    return type(value).__name__ in ("NAType", "NaTType")


def _value_counts(values: Any) -> tuple[dict[str, int], int]:
    """(count per category as str, missing count), by hashing: pandas' value_counts if given a
    Series, else collections.Counter."""
    raw: Mapping[Hashable, int]
    if hasattr(values, "value_counts"):
        vc = values.value_counts(dropna=False, sort=False)
        raw = dict(zip(vc.index.tolist(), vc.to_numpy().tolist(), strict=True))
    else:
        arr = np.asarray(values, dtype=object).ravel()
        raw = Counter(arr.tolist())
    counts: dict[str, int] = {}
    missing = 0
    for key, n in raw.items():
        if _is_missing(key):
            missing += int(n)
        else:
            k = str(key)
            counts[k] = counts.get(k, 0) + int(n)
    return counts, missing


def _categorical_profile(vc: tuple[dict[str, int], int], top_k: int) -> CategoricalProfile:
    counts, missing = vc
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = ranked[:top_k]
    return CategoricalProfile(
        count=sum(counts.values()),
        missing=missing,
        categories=tuple(k for k, _ in top),
        category_counts=tuple(n for _, n in top),
        other=sum(n for _, n in ranked[top_k:]),
    )


# ---------------------------------------------------------------------------- statistics


def drift_statistics(
    profile: DriftProfile, window_columns: Mapping[str, Any]
) -> dict[str, ColumnStatistics]:
    """All five statistics for every profile column, window against the profile.

    Args:
        profile: The reference profile.
        window_columns: Column name to the window's values; extra columns are ignored.

    Raises:
        ValueError: A profile column is missing from the window.
    """
    absent = [c for c in profile.columns if c not in window_columns]
    if absent:
        raise ValueError(f"window lacks profile columns: {', '.join(absent)}")
    return {
        name: column_statistics(name, p, window_columns[name])
        for name, p in profile.columns.items()
    }


def column_statistics(name: str, profile: ColumnProfile, values: Any) -> ColumnStatistics:
    """All five statistics of one column (see the module docstring for the formulas)."""
    if isinstance(profile, NumericProfile):
        return _numeric_statistics(name, profile, _as_float(values))
    return _categorical_statistics(name, profile, _value_counts(values))


def _binned(
    ref_counts: Array, win_counts: Array
) -> tuple[float, float | None, float | None, float]:
    """PSI, chi-square statistic and p-value, JS distance of two count vectors (same bins)."""
    r = ref_counts / ref_counts.sum()
    c = win_counts / win_counts.sum()
    rp = np.clip(r, PSI_EPSILON, None)
    cp = np.clip(c, PSI_EPSILON, None)
    psi = float(np.sum((cp - rp) * np.log(cp / rp)))
    keep = (ref_counts + win_counts) > 0
    chi2: float | None
    p: float | None
    if int(keep.sum()) < 2:
        chi2, p = 0.0, 1.0
    else:
        res = stats.chi2_contingency(np.vstack([ref_counts[keep], win_counts[keep]]))
        chi2, p = float(res.statistic), float(res.pvalue)
    js = float(jensenshannon(r, c, base=2))
    return psi, chi2, p, min(max(js, 0.0), 1.0)


def _numeric_statistics(name: str, p: NumericProfile, values: Array) -> ColumnStatistics:
    n_ref = p.count + p.missing
    miss_ref = p.missing / n_ref if n_ref else 0.0
    if values.size == 0:
        return ColumnStatistics(
            name, "numeric", n_ref, 0, miss_ref, None, True, note="empty window: no rows"
        )
    finite = values[np.isfinite(values)]
    n_win = int(values.size)
    cs = np.sort(finite)
    edges = np.asarray(p.edges, dtype=np.float64)
    win_bins = np.append(_sorted_bin_counts(cs, edges), n_win - cs.size).astype(np.float64)
    ref_bins = np.append(np.asarray(p.bin_counts, dtype=np.float64), float(p.missing))
    notes: list[str] = []
    if n_ref == 0:
        return ColumnStatistics(
            name,
            "numeric",
            0,
            n_win,
            0.0,
            (n_win - cs.size) / n_win,
            False,
            note="empty reference",
        )
    psi, chi2, chi2_p, js = _binned(ref_bins, win_bins)
    ks_d = ks_p = w_raw = w_norm = None
    if cs.size == 0 or p.count == 0:
        notes.append(
            "no finite values " + ("in the window" if cs.size == 0 else "in the reference")
        )
    else:
        sample = np.asarray(p.sample, dtype=np.float64)
        ks_d, w_raw = _ks_wasserstein_sorted(sample, cs)
        ks_p = _ks_p_value(ks_d, sample, cs, p.count)
        sd = p.sd if p.sd else 1.0
        w_norm = w_raw / sd
    return ColumnStatistics(
        column=name,
        kind="numeric",
        n_reference=n_ref,
        n_window=n_win,
        missing_reference=miss_ref,
        missing_window=(n_win - cs.size) / n_win,
        empty=False,
        psi=psi,
        chi2_statistic=chi2,
        chi2_p_value=chi2_p,
        js_distance=js,
        ks_statistic=ks_d,
        ks_p_value=ks_p,
        wasserstein=w_norm,
        wasserstein_raw=w_raw,
        note="; ".join(notes) or None,
    )


def _count_le(s: Array) -> npt.NDArray[np.int64]:
    """For each position k of a sorted array, how many elements are <= s[k] (ties share)."""
    n = s.size
    idx = np.arange(1, n + 1, dtype=np.int64)
    if n < 2 or not np.any(s[1:] == s[:-1]):
        return idx
    last = np.append(s[1:] != s[:-1], True)  # position ends its run of equal values
    ends = np.flatnonzero(last) + 1
    run = np.concatenate(([0], np.cumsum(last[:-1])))
    return ends[run].astype(np.int64)


def _ks_wasserstein_sorted(r: Array, c: Array) -> tuple[float, float]:
    """KS D and Wasserstein-1 of two sorted samples, without sorting their union.

    Both ECDFs are right-continuous step functions. At each point x of either sample the
    difference F_r(x) - F_c(x) holds until the next point of either sample; D is its largest
    absolute value and W1 the sum of |difference| x segment length (what scipy computes after
    sorting the concatenation). A window point's next point is min(next window point, next
    reference point), found by one binary search of the window into the (small) reference.
    """
    m, n = r.size, c.size
    # at window points
    ir = np.searchsorted(r, c, side="right")  # reference values <= c[k]
    fc = _count_le(c) / n
    fr_at_c = ir / m
    next_c = np.append(c[1:], np.inf)
    next_r = np.append(r, np.inf)[ir]
    seg_c = np.minimum(next_c, next_r) - c
    diff_c = np.abs(fr_at_c - fc)
    # at reference points
    jc = np.searchsorted(c, r, side="right")  # window values <= r[i]
    fr = _count_le(r) / m
    fc_at_r = jc / n
    next_r2 = np.append(r[1:], np.inf)
    next_c2 = np.append(c, np.inf)[jc]
    seg_r = np.minimum(next_r2, next_c2) - r
    # a reference point equal to a window point starts the same segment: count it once
    shared = (jc > 0) & (c[np.maximum(jc - 1, 0)] == r)
    seg_r = np.where(shared, 0.0, seg_r)
    diff_r = np.abs(fr - fc_at_r)
    d = max(float(diff_c.max()), float(diff_r.max()))
    finite_c = np.isfinite(seg_c)
    finite_r = np.isfinite(seg_r)
    w = float(
        np.sum(diff_c[finite_c] * seg_c[finite_c]) + np.sum(diff_r[finite_r] * seg_r[finite_r])
    )
    return d, w


def _ks_p_value(d: float, sample: Array, window: Array, n_reference: int) -> float:
    """scipy's ks_2samp(method="auto") p-value; the reference counts with its real size."""
    n1, n2 = n_reference, int(window.size)
    if sample.size == n_reference and max(n1, n2) <= _EXACT_KS_MAX_N:
        return float(stats.ks_2samp(sample, window).pvalue)
    big, small = max(n1, n2), min(n1, n2)
    en = float(np.round(big * small / (big + small)))
    if en <= _KSTWO_MAX_EN:
        p = stats.kstwo.sf(d, en)
    else:
        root = math.sqrt(en)
        p = stats.kstwobign.sf((root + 0.12 + 0.11 / root) * d)
    return float(min(max(p, 0.0), 1.0))


def _categorical_statistics(
    name: str, p: CategoricalProfile, vc: tuple[dict[str, int], int]
) -> ColumnStatistics:
    counts, missing = vc
    n_ref = p.count + p.missing
    miss_ref = p.missing / n_ref if n_ref else 0.0
    n_win = sum(counts.values()) + missing
    na = "not defined for a categorical column"
    if n_win == 0:
        return ColumnStatistics(
            name, "categorical", n_ref, 0, miss_ref, None, True, note="empty window: no rows"
        )
    if n_ref == 0:
        return ColumnStatistics(
            name, "categorical", 0, n_win, 0.0, missing / n_win, False, note="empty reference"
        )
    known = set(p.categories)
    win = [counts.get(k, 0) for k in p.categories]
    unseen = {k: n for k, n in counts.items() if k not in known}
    n_unseen = sum(unseen.values())
    ref = list(p.category_counts)
    if p.other > 0:  # a truncated profile: an unknown value may be a rare reference category
        ref += [p.other]
        win += [n_unseen]
    else:  # every reference category stored: each unseen one is its own bin
        ref += [0] * len(unseen)
        win += list(unseen.values())
    ref.append(p.missing)
    win.append(missing)
    psi, chi2, chi2_p, js = _binned(np.asarray(ref, dtype=np.float64), np.asarray(win, float))
    return ColumnStatistics(
        column=name,
        kind="categorical",
        n_reference=n_ref,
        n_window=n_win,
        missing_reference=miss_ref,
        missing_window=missing / n_win,
        empty=False,
        psi=psi,
        chi2_statistic=chi2,
        chi2_p_value=chi2_p,
        js_distance=js,
        unseen=n_unseen,
        note=f"ks, wasserstein: {na}",
    )


# -------------------------------------------------------------------------------- report


def drift_report(
    profile: DriftProfile,
    window_columns: Mapping[str, Any],
    statistics: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    default_statistic: str = "psi",
    default_threshold: float | None = None,
) -> DriftReport:
    """Decide per column whether the window drifted from the reference profile.

    Each column is judged by `statistics[col]` (else `default_statistic`) against
    `thresholds[col]`, else `default_threshold` for a column judged by the default statistic,
    else `DEFAULT_THRESHOLDS[statistic]` (psi 0.2, ks 0.05, chi2 0.05, js 0.1, wasserstein
    0.1). Distances drift when value >= threshold; "ks" and "chi2" when their p-value <
    threshold. A column without a value (empty window, no finite values) is not drifted. All
    five statistics are computed and kept in each decision's `statistics`.

    Raises:
        ValueError: An unknown statistic, "ks"/"wasserstein" for a categorical column, a
            column in `statistics`/`thresholds` that the profile lacks, a negative threshold,
            or a profile column missing from the window.
    """
    statistics = dict(statistics or {})
    thresholds = dict(thresholds or {})
    for label, keyed in (("statistics", statistics), ("thresholds", thresholds)):
        unknown = sorted(set(keyed) - set(profile.columns))
        if unknown:
            raise ValueError(f"{label} names columns not in the profile: {', '.join(unknown)}")
    chosen: dict[str, tuple[str, float]] = {}
    for col, p in profile.columns.items():
        stat = statistics.get(col, default_statistic)
        if stat not in STATISTICS:
            raise ValueError(
                f"column {col!r}: unknown statistic {stat!r}; choose from {', '.join(STATISTICS)}"
            )
        if p.kind == "categorical" and stat in ("ks", "wasserstein"):
            raise ValueError(
                f"column {col!r} is categorical: {stat} needs numeric values (use psi, chi2, js)"
            )
        if col in thresholds:
            thr = float(thresholds[col])
        elif stat == default_statistic and default_threshold is not None:
            thr = float(default_threshold)
        else:
            thr = DEFAULT_THRESHOLDS[stat]
        if not math.isfinite(thr) or thr < 0:
            raise ValueError(f"column {col!r}: threshold must be finite and >= 0, got {thr}")
        chosen[col] = (stat, thr)
    computed = drift_statistics(profile, window_columns)
    out: dict[str, ColumnDrift] = {}
    for col, (stat, thr) in chosen.items():
        cs = computed[col]
        value = cs.value(stat)
        if value is None:
            drifted = False
        elif stat in P_VALUE_STATISTICS:
            drifted = value < thr
        else:
            drifted = value >= thr
        out[col] = ColumnDrift(col, stat, value, thr, drifted, cs)
    return DriftReport(columns=out)
