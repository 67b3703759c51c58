"""The statistics and verdicts of a drift check: pure numpy and scipy, no I/O.

Numeric features (each a row of float64 values; NaN and infinities are missing):
- PSI on `psi_bins` quantile bins of the reference: inner edges at the reference's
  quantiles i/bins (numpy's default linear method), outer edges -inf and +inf, each bin
  closed on the left like numpy.histogram's. An empty bin's share counts as EPSILON
  (Evidently's value), so PSI stays finite. Equal edges make empty bins whose terms are 0,
  so they change nothing; the report lists the bins left after collapsing them.
  Drifted at psi >= psi_threshold.
- Two-sample Kolmogorov-Smirnov: the statistic and p-value of scipy.stats.ks_2samp's
  default (two-sided, method "auto": exact when both samples have at most 10,000 values,
  else Smirnov's asymptotic distribution, scipy.stats.kstwo). Drifted when the p-value
  passes the correction for the m numeric features tested: "bonferroni" p < alpha / m,
  "fdr" Benjamini-Hochberg (scipy.stats.false_discovery_control) adjusted p < alpha,
  "none" p < alpha.
- The Wasserstein distance (scipy.stats.wasserstein_distance's), reported without a verdict.

Categorical features (counts per category):
- Chi-squared (scipy.stats.chisquare) of the current counts against the reference's shares.
  A current category the reference lacks counts in the reference's OTHER bucket when it
  has one (the category may be among the rest), else it is a new category whose
  expected share is EPSILON; the expected shares are then scaled to sum to 1.
  Drifted at p < chi_squared_p_value.
- Jensen-Shannon distance, base 2 (scipy.spatial.distance.jensenshannon) of the two
  distributions over the union of categories. Drifted at distance >= its threshold.

A feature is tested when it has at least min_samples current values and one reference
value; otherwise it is reported without scores. The check's verdict is InsufficientData
when the window has fewer than min_samples rows or no feature is tested; else Drift when
the share of tested features that drifted reaches drifted_feature_share.

The numeric work is a sort of each current row plus linear passes. The reference rows
arrive sorted, so KS needs the current values' ranks in the reference only near where the
CDF gap peaks (see ks_statistic), and the Wasserstein distance is an integral over
quantiles whose grid depends only on the two sample sizes (see QuantileGrid).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import special, stats  # type: ignore[import-untyped]
from scipy.spatial import distance  # type: ignore[import-untyped]

# scipy's exact two-sample KS distribution has no public API: ks_2samp computes it with
# this helper, and only a call to it gives the same p-values.
from scipy.stats._stats_py import _attempt_exact_2kssamp  # type: ignore[import-untyped]

OTHER = "__other__"
# An empty PSI bin's share and an unseen category's expected share (Evidently's value).
EPSILON = 1e-4
CORRECTIONS = ("bonferroni", "fdr", "none")
# scipy.stats.ks_2samp's method "auto": exact when neither sample is larger.
KS_EXACT_MAX_SAMPLES = 10_000
# Where kstwo.sf's p-value is the exact sum smirnov computes: n above, n up to, n d^2 in.
SMIRNOV_SUM_MIN_N = 140
SMIRNOV_SUM_MAX_N = 1_000_000
SMIRNOV_SUM_BAND = (2.2, 370.0)
# Current values per block whose reference rank is taken first (see ks_statistic).
KS_BLOCK = 64
NUMERIC_METHODS = ("psi", "ks")
CATEGORICAL_METHODS = ("chi_squared", "jensen_shannon")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Side = Literal["left", "right"]


@dataclass(frozen=True)
class Settings:
    """Which methods a check runs, their thresholds, and the verdict's policy."""

    psi: bool = True
    psi_bins: int = 10
    psi_threshold: float = 0.2
    ks: bool = True
    ks_p_value: float = 0.05
    ks_correction: str = "bonferroni"
    chi_squared: bool = True
    chi_squared_p_value: float = 0.05
    jensen_shannon: bool = True
    jensen_shannon_threshold: float = 0.1
    drifted_feature_share: float = 0.5
    min_samples: int = 500

    def __post_init__(self) -> None:
        if self.ks_correction not in CORRECTIONS:
            raise ValueError(f"ks_correction {self.ks_correction!r} is not one of {CORRECTIONS}")
        if self.psi_bins < 1:
            raise ValueError(f"psi_bins must be at least 1, not {self.psi_bins}")

    def enabled(self, methods: Sequence[str]) -> tuple[str, ...]:
        """Those of the methods this check runs, in the given order."""
        return tuple(method for method in methods if getattr(self, method))


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical feature: the reference's counts and the window's values."""

    name: str
    reference_counts: Mapping[str, int]
    current: npt.NDArray[Any]


@dataclass(frozen=True)
class FeatureResult:
    """One feature's verdict, the deciding method and score, and every score computed."""

    name: str
    type: str
    drifted: bool
    method: str
    score: float
    scores: dict[str, float]
    flagged: tuple[str, ...]
    samples: int
    details: dict[str, Any]


@dataclass(frozen=True)
class CheckResult:
    """The verdict on the window, its rows, the share of drifted features, each feature."""

    verdict: str
    samples: int
    drifted_feature_share: float | None
    features: tuple[FeatureResult, ...]


def check(
    numeric_names: Sequence[str],
    reference: FloatArray,
    current: FloatArray,
    categorical: Sequence[CategoricalFeature],
    settings: Settings,
) -> CheckResult:
    """Compare the window with the reference, feature by feature, and give the verdict.

    reference: (features, rows) with each row sorted ascending (missing values last);
    current: (features, rows) in any order.
    """
    if reference.shape[0] != len(numeric_names) or current.shape[0] != len(numeric_names):
        raise ValueError(
            f"{len(numeric_names)} numeric features but reference rows {reference.shape[0]} "
            f"and current rows {current.shape[0]}"
        )
    rows = max([current.shape[1], *(len(feature.current) for feature in categorical)])
    insufficient = CheckResult("InsufficientData", rows, None, ())
    if rows < settings.min_samples:
        return insufficient
    features = (
        *numeric_results(numeric_names, reference, current, settings),
        *categorical_results(categorical, settings),
    )
    tested = [feature for feature in features if feature.scores]
    if not tested:
        return insufficient
    share = sum(feature.drifted for feature in tested) / len(tested)
    verdict = "Drift" if share >= settings.drifted_feature_share else "NoDrift"
    return CheckResult(verdict, rows, share, features)


def _feature_result(
    name: str,
    kind: str,
    methods: Sequence[str],
    scores: dict[str, float],
    flags: Mapping[str, bool],
    samples: int,
    details: dict[str, Any],
) -> FeatureResult:
    """A tested feature's result: the first flagging method decides, else the first run."""
    flagged = tuple(method for method in methods if flags[method])
    method = flagged[0] if flagged else methods[0]
    return FeatureResult(
        name, kind, bool(flagged), method, scores[method], scores, flagged, samples, details
    )


def _untested(
    name: str, kind: str, methods: Sequence[str], samples: int, reason: str
) -> FeatureResult:
    return FeatureResult(
        name, kind, False, methods[0], math.nan, {}, (), samples, {"untested": reason}
    )


def _untested_reason(samples: int, reference_samples: int, settings: Settings) -> str | None:
    """Why a feature cannot be tested (None when it can): one rule for both types."""
    if samples < max(settings.min_samples, 1):
        return f"{samples} current values, fewer than min_samples {settings.min_samples}"
    if reference_samples == 0:
        return "no reference values"
    return None


# --- Numeric features ---------------------------------------------------------------------


@dataclass(frozen=True)
class NumericStatistics:
    """Per-feature statistics of the numeric rows, as arrays over the features; untested
    says why a feature was not tested (None when it was)."""

    reference_samples: IntArray
    samples: IntArray
    untested: tuple[str | None, ...]
    ks_statistic: FloatArray
    wasserstein: FloatArray
    edges: FloatArray
    reference_counts: IntArray
    current_counts: IntArray

    @property
    def tested(self) -> npt.NDArray[np.bool_]:
        """Which features were tested."""
        return np.array([reason is None for reason in self.untested], dtype=bool)


def numeric_results(
    names: Sequence[str], reference: FloatArray, current: FloatArray, settings: Settings
) -> list[FeatureResult]:
    """Every numeric feature's result (none when neither PSI nor KS runs)."""
    methods = settings.enabled(NUMERIC_METHODS)
    if not names or not methods:
        return []
    computed = numeric_statistics(reference, current, settings)
    psi_values = psi(computed.reference_counts, computed.current_counts)
    ks_d, ks_p = ks_test(computed.ks_statistic, computed.reference_samples, computed.samples)
    ks_reject, ks_alpha, ks_compared = _corrected(ks_p, computed.tested, settings)
    results = []
    for position, name in enumerate(names):
        samples = int(computed.samples[position])
        reason = computed.untested[position]
        if reason is not None:
            results.append(_untested(name, "numeric", methods, samples, reason))
            continue
        scores: dict[str, float] = {}
        details: dict[str, Any] = {"referenceSamples": int(computed.reference_samples[position])}
        if settings.psi:
            scores["psi"] = float(psi_values[position])
            details["psi"] = _psi_details(computed, position, settings)
        if settings.ks:
            scores["ks"] = float(ks_p[position])
            scores["ks_statistic"] = float(ks_d[position])
            details["ks"] = {
                "correction": settings.ks_correction,
                "pValue": float(ks_compared[position]),
                "alpha": float(ks_alpha[position]),
            }
        scores["wasserstein"] = float(computed.wasserstein[position])
        flags = {
            "psi": settings.psi and scores["psi"] >= settings.psi_threshold,
            "ks": settings.ks and bool(ks_reject[position]),
        }
        results.append(_feature_result(name, "numeric", methods, scores, flags, samples, details))
    return results


def numeric_statistics(
    reference: FloatArray, current: FloatArray, settings: Settings
) -> NumericStatistics:
    """KS statistics, Wasserstein distances and PSI bin counts of every numeric feature.

    Each current row is sorted in one reused buffer, so the window is never copied whole.
    """
    features = reference.shape[0]
    spans = np.array([finite_span(row) for row in reference], dtype=np.int64).reshape(-1, 2)
    starts, reference_samples = spans[:, 0], spans[:, 1] - spans[:, 0]
    edges = psi_edges(reference, starts, reference_samples, settings.psi_bins)
    samples = np.zeros(features, dtype=np.int64)
    untested: list[str | None] = []
    ks = np.full(features, np.nan)
    distances = np.full(features, np.nan)
    reference_counts = np.zeros((features, settings.psi_bins), dtype=np.int64)
    current_counts = np.zeros((features, settings.psi_bins), dtype=np.int64)
    ordered = np.empty(current.shape[1], dtype=np.float64)
    grids = _GridCache()
    for position, (start, end) in enumerate(spans.tolist()):
        np.copyto(ordered, current[position])
        ordered.sort()
        low, high = finite_span(ordered)
        values = ordered[low:high]
        sample = reference[position, start:end]
        samples[position] = values.size
        untested.append(_untested_reason(values.size, sample.size, settings))
        if untested[-1] is not None:
            continue
        inner = edges[position, 1:-1]
        reference_counts[position] = bin_counts(sample, inner)
        current_counts[position] = bin_counts(values, inner)
        distances[position] = wasserstein(sample, values, grids)
        if settings.ks:
            ks[position] = ks_statistic(sample, values)
    return NumericStatistics(
        reference_samples,
        samples,
        tuple(untested),
        ks,
        distances,
        edges,
        reference_counts,
        current_counts,
    )


def finite_span(ordered: FloatArray) -> tuple[int, int]:
    """Where the finite values of a sorted row start and end (-inf first, +inf and NaN last)."""
    start = int(np.searchsorted(ordered, -np.inf, side="right"))
    end = int(np.searchsorted(ordered, np.inf, side="left"))
    return start, end


def psi_edges(reference: FloatArray, starts: IntArray, samples: IntArray, bins: int) -> FloatArray:
    """(features, bins + 1) PSI edges: -inf, the reference quantiles i/bins, +inf.

    numpy.quantile's linear method, read from the sorted rows (starts and samples give each
    row's finite values). A row without values gets NaN edges.
    """
    levels = np.arange(1, bins) / bins
    last = samples[:, None] - 1
    virtual = last * levels
    below = np.minimum(np.floor(virtual), last)
    above = np.minimum(below + 1, last)
    gamma = virtual - below
    rows = np.arange(reference.shape[0])[:, None]
    offsets = starts[:, None]
    low = reference[rows, np.maximum(offsets + below.astype(np.int64), 0)]
    high = reference[rows, np.maximum(offsets + above.astype(np.int64), 0)]
    # numpy's _lerp: interpolate from the nearer end for accuracy.
    difference = high - low
    inner = np.where(gamma >= 0.5, high - difference * (1 - gamma), low + difference * gamma)
    inner[samples == 0] = np.nan
    outer = np.full((reference.shape[0], 1), np.inf)
    edges: FloatArray = np.hstack([-outer, inner, outer])
    return edges


def bin_counts(ordered: FloatArray, inner_edges: FloatArray) -> IntArray:
    """How many sorted values fall in each bin [edge, next edge) of the inner edges."""
    positions = np.searchsorted(ordered, inner_edges, side="left")
    counts: IntArray = np.diff(positions, prepend=0, append=ordered.size)
    return counts


def psi(reference_counts: IntArray, current_counts: IntArray) -> FloatArray:
    """The population stability index of each row of bin counts; EPSILON for an empty bin."""
    expected = _shares(reference_counts)
    actual = _shares(current_counts)
    values: FloatArray = np.sum((actual - expected) * np.log(actual / expected), axis=1)
    return values


def _shares(counts: IntArray) -> FloatArray:
    totals = counts.sum(axis=1, keepdims=True)
    shares: FloatArray = counts / np.maximum(totals, 1)
    shares[shares == 0] = EPSILON
    return shares


def _psi_details(computed: NumericStatistics, position: int, settings: Settings) -> dict[str, Any]:
    """The bins as tested (equal edges collapsed: their empty bins add nothing)."""
    edges = computed.edges[position]
    kept = np.append(np.diff(edges) > 0, True)
    reference = computed.reference_counts[position]
    current = computed.current_counts[position]
    bins = kept[:-1]
    return {
        "threshold": settings.psi_threshold,
        "epsilon": EPSILON,
        "edges": edges[kept].tolist(),
        "reference": (reference[bins] / max(int(reference.sum()), 1)).tolist(),
        "current": (current[bins] / max(int(current.sum()), 1)).tolist(),
    }


def ks_statistic(reference: FloatArray, current: FloatArray) -> float:
    """scipy.stats.ks_2samp's two-sided statistic of two sorted samples.

    D = max(D-, D+), the largest gaps between the empirical CDFs F1 (reference, n1 values
    a) and F2 (current, n2 values b), both found at current values b_j:
    D- = max_j (j+1)/n2 - #{a <= b_j}/n1, the gap F2 - F1 at b_j, and
    D+ = max_j #{a < b_j}/n1 - j/n2, the gap F1 - F2 just before b_j.
    Within ties the last (D-) or first (D+) b_j gives the true gap, the others less, so
    ties in either sample need no special case.
    """
    return max(_largest_gap(reference, current, "right"), _largest_gap(reference, current, "left"))


def _largest_gap(reference: FloatArray, current: FloatArray, side: Side) -> float:
    """D- (side "right", ranks #{a <= b_j}) or D+ (side "left", ranks #{a < b_j}).

    Ranks cost a binary search each, so they are first taken at one b_j per KS_BLOCK: the
    last of each block for D- (where the block's gap would peak were the rank flat), the
    first for D+. As ranks only grow, the neighbouring block's rank bounds every gap in a
    block; only blocks whose bound beats the largest gap seen get all their ranks.
    """
    n1, n2 = reference.size, current.size
    first = np.arange(0, n2, KS_BLOCK, dtype=np.int64)
    at = np.minimum(first + KS_BLOCK, n2) - 1 if side == "right" else first
    ranks = np.searchsorted(reference, current[at], side=side)
    neighbours = np.append(ranks[1:], n1) if side == "left" else np.concatenate(([0], ranks[:-1]))
    best = float(np.max(_gap(at, ranks, n1, n2, side)))
    blocks = np.flatnonzero(_gap(at, neighbours, n1, n2, side) > best)
    if blocks.size:
        positions = (blocks[:, None] * KS_BLOCK + np.arange(KS_BLOCK)).ravel()
        positions = positions[positions < n2]
        exact = np.searchsorted(reference, current[positions], side=side)
        best = max(best, float(np.max(_gap(positions, exact, n1, n2, side))))
    return best


def _gap(positions: IntArray, ranks: IntArray, n1: int, n2: int, side: Side) -> FloatArray:
    """F2 - F1 at b_j (side "right") or F1 - F2 just before it (side "left"), rounded as
    scipy's cdf1 - cdf2."""
    gaps: FloatArray = (
        (positions + 1) / n2 - ranks / n1 if side == "right" else ranks / n1 - positions / n2
    )
    return gaps


def ks_test(statistics: FloatArray, n1: IntArray, n2: IntArray) -> tuple[FloatArray, FloatArray]:
    """scipy.stats.ks_2samp's two-sided statistics and p-values (method "auto") from the
    statistics of ks_statistic; NaN where there is no statistic.

    Like scipy, the exact method rounds a statistic to a multiple of 1/lcm(n1, n2), and
    falls back to the asymptotic one when it fails.
    """
    statistics = statistics.copy()
    p_values = np.full(statistics.shape, np.nan)
    computed = ~np.isnan(statistics)
    exact = computed & (np.maximum(n1, n2) <= KS_EXACT_MAX_SAMPLES)
    asymptotic = computed & ~exact
    for position in np.flatnonzero(exact):
        a, b = int(n1[position]), int(n2[position])
        success, statistics[position], p = _attempt_exact_2kssamp(
            a, b, math.gcd(a, b), float(statistics[position]), "two-sided"
        )
        if success:
            p_values[position] = p
        else:
            asymptotic[position] = True
    larger = np.maximum(n1, n2).astype(np.float64)
    smaller = np.minimum(n1, n2).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        effective = np.round(larger * smaller / (larger + smaller))
    summed = asymptotic & _smirnov_summed(effective, statistics)
    direct = asymptotic & ~summed
    p_values[direct] = stats.kstwo.sf(statistics[direct], effective[direct])
    for position in np.flatnonzero(summed):
        p_values[position] = 2 * smirnov(int(effective[position]), float(statistics[position]))
    clipped: FloatArray = np.clip(p_values, 0, 1)
    return statistics, clipped


def _smirnov_summed(n: FloatArray, d: FloatArray) -> npt.NDArray[np.bool_]:
    """Where scipy.stats.kstwo.sf(d, n) is 2 * scipy.special.smirnov(n, d) computed by its
    exact sum (scipy.stats._ksstats._kolmogn's branches): there smirnov runs a loop of up
    to n terms in double-double arithmetic, 0.4 s at n = 500,000; smirnov sums them at once.
    """
    with np.errstate(invalid="ignore"):
        scaled = n * d
        squared = scaled * d
        return (
            (n > SMIRNOV_SUM_MIN_N)
            & (n <= SMIRNOV_SUM_MAX_N)
            & (d < 0.5)
            & (scaled > 1)
            & (scaled < n - 1)
            & (squared >= SMIRNOV_SUM_BAND[0])
            & (squared < SMIRNOV_SUM_BAND[1])
        )


def smirnov(n: int, d: float) -> float:
    """scipy.special.smirnov(n, d) = P(D+_n >= d), by Birnbaum and Tingey's sum
    d * sum over v <= n(1-d) of C(n, v) (1 - d - v/n)^(n-v) (d + v/n)^(v-1), in logs.
    The binomial's log is -log(n+1) - betaln(n-v+1, v+1), accurate for large n: the sum
    agrees with scipy's to about 1e-9 relative.
    """
    v = np.arange(math.floor(n * (1 - d)) + 1, dtype=np.float64)
    rest = (n - v) / n - d
    positive = rest > 0
    v, rest = v[positive], rest[positive]
    log_terms = (
        (n - v) * np.log(rest)
        + (v - 1) * np.log(d + v / n)
        - special.betaln(n - v + 1, v + 1)
        - math.log(n + 1)
    )
    peak = float(log_terms.max())
    return d * math.exp(peak) * float(np.exp(log_terms - peak).sum())


def _corrected(
    p_values: FloatArray, tested: npt.NDArray[np.bool_], settings: Settings
) -> tuple[npt.NDArray[np.bool_], FloatArray, FloatArray]:
    """Which tested features KS flags after the correction, the alpha each p-value met, and
    the p-value compared with it (Benjamini-Hochberg's adjusted one for "fdr")."""
    alpha = np.full(p_values.shape, settings.ks_p_value)
    compared = p_values.copy()
    tests = int(tested.sum())
    if settings.ks_correction == "bonferroni" and tests:
        alpha /= tests
    elif settings.ks_correction == "fdr" and tests:
        compared[tested] = stats.false_discovery_control(p_values[tested], method="bh")
    with np.errstate(invalid="ignore"):
        reject = tested & (compared < alpha)
    return reject, alpha, compared


def wasserstein(reference: FloatArray, current: FloatArray, grids: _GridCache) -> float:
    """scipy.stats.wasserstein_distance of two sorted samples: the integral of |Q1 - Q2|
    over the quantile levels (equal to that of |F1 - F2| over the values)."""
    if reference.size == current.size:
        gaps = np.subtract(reference, current)
        np.abs(gaps, out=gaps)
        return float(gaps.mean())
    grid = grids.get(reference.size, current.size)
    gaps = np.repeat(reference, grid.reference_repeats)
    gaps -= np.repeat(current, grid.current_repeats)
    np.abs(gaps, out=gaps)
    return float(gaps @ grid.widths)


@dataclass(frozen=True)
class QuantileGrid:
    """The quantile levels where either of two empirical quantile functions steps.

    Q1 steps at i/n1 and Q2 at j/n2; between consecutive levels of their union both are
    constant. Counted in units of 1/(n1 n2) the levels are integers, sorted exactly (a
    level common to both is kept twice, the second interval empty). In order, the union's
    intervals fall reference_repeats[i] in Q1's step i and current_repeats[j] in Q2's step
    j; widths holds their lengths.
    """

    reference_repeats: IntArray
    current_repeats: IntArray
    widths: FloatArray

    @classmethod
    def of(cls, n1: int, n2: int) -> QuantileGrid:
        """The grid of sample sizes n1 and n2."""
        return cls(_steps_within(n1, n2), _steps_within(n2, n1), _interval_widths(n1, n2))


def _steps_within(n: int, other: int) -> IntArray:
    """For each of a sample's n steps, the levels of the union in (i/n, (i+1)/n]: its own
    end plus the other sample's levels j/other in that range."""
    floors = np.arange(n + 1, dtype=np.int64) * other // n
    repeats: IntArray = np.diff(floors) + 1
    return repeats


def _interval_widths(n1: int, n2: int) -> FloatArray:
    ends = np.concatenate(
        (np.arange(1, n1 + 1, dtype=np.int64) * n2, np.arange(1, n2 + 1, dtype=np.int64) * n1)
    )
    ends.sort()
    widths: FloatArray = np.diff(ends, prepend=0) / (n1 * n2)
    return widths


class _GridCache:
    """The last quantile grid built: features without missing values share their sizes."""

    def __init__(self) -> None:
        self._sizes = (0, 0)
        self._grid: QuantileGrid | None = None

    def get(self, n1: int, n2: int) -> QuantileGrid:
        if self._grid is None or self._sizes != (n1, n2):
            self._sizes, self._grid = (n1, n2), QuantileGrid.of(n1, n2)
        return self._grid


# --- Categorical features -----------------------------------------------------------------


def categorical_results(
    features: Sequence[CategoricalFeature], settings: Settings
) -> list[FeatureResult]:
    """Every categorical feature's result (none when neither chi-squared nor JS runs)."""
    methods = settings.enabled(CATEGORICAL_METHODS)
    return [categorical_result(feature, methods, settings) for feature in features if methods]


def categorical_result(
    feature: CategoricalFeature, methods: Sequence[str], settings: Settings
) -> FeatureResult:
    """One categorical feature's chi-squared and Jensen-Shannon scores and verdict."""
    current = category_counts(feature.current)
    samples = sum(current.values())
    reference = {name: int(count) for name, count in feature.reference_counts.items()}
    reason = _untested_reason(samples, sum(reference.values()), settings)
    if reason is not None:
        return _untested(feature.name, "categorical", methods, samples, reason)
    categories, expected, observed = aligned_counts(reference, current)
    scores: dict[str, float] = {}
    flags: dict[str, bool] = {}
    if settings.chi_squared:
        test = stats.chisquare(observed, chi_squared_expected(expected, samples))
        scores["chi_squared"] = float(test.pvalue)
        scores["chi_squared_statistic"] = float(test.statistic)
        flags["chi_squared"] = scores["chi_squared"] < settings.chi_squared_p_value
    if settings.jensen_shannon:
        scores["jensen_shannon"] = float(distance.jensenshannon(expected, observed, base=2))
        flags["jensen_shannon"] = scores["jensen_shannon"] >= settings.jensen_shannon_threshold
    details = {
        "categories": categories,
        "referenceCounts": expected.tolist(),
        "currentCounts": observed.tolist(),
        "chiSquaredPValue": settings.chi_squared_p_value,
        "jensenShannonThreshold": settings.jensen_shannon_threshold,
        "epsilon": EPSILON,
    }
    return _feature_result(feature.name, "categorical", methods, scores, flags, samples, details)


def category_counts(values: npt.NDArray[Any]) -> dict[str, int]:
    """How often each value occurs; None and NaN are missing and not counted."""
    counted = Counter(values.tolist())
    return {str(value): count for value, count in counted.items() if not _missing(value)}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def aligned_counts(
    reference: Mapping[str, int], current: Mapping[str, int]
) -> tuple[list[str], IntArray, IntArray]:
    """The union of categories (the reference's, then new ones sorted) with both counts.

    A current category the reference lacks joins the reference's OTHER bucket when there is
    one: the profile keeps only the most frequent categories, and it may be among the rest.
    """
    pooled = dict.fromkeys(reference, 0)
    for name, count in current.items():
        key = name if name in reference or OTHER not in reference else OTHER
        pooled[key] = pooled.get(key, 0) + count
    categories = list(reference) + sorted(set(pooled) - set(reference))
    expected = np.array([reference.get(name, 0) for name in categories], dtype=np.int64)
    observed = np.array([pooled[name] for name in categories], dtype=np.int64)
    return categories, expected, observed


def chi_squared_expected(reference_counts: IntArray, samples: int) -> FloatArray:
    """Expected counts of `samples` values at the reference's shares, EPSILON for a share
    of 0, scaled to sum to `samples` as scipy.stats.chisquare requires."""
    shares = reference_counts / reference_counts.sum()
    shares[shares == 0] = EPSILON
    expected: FloatArray = shares / shares.sum() * samples
    return expected
