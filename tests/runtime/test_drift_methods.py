"""The drift statistics: equal to scipy's, PSI as written out by hand, and the verdicts."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from gyre_runtime.drift import methods
from gyre_runtime.drift.methods import (
    EPSILON,
    OTHER,
    CategoricalFeature,
    CheckResult,
    FeatureResult,
    Settings,
    check,
)

TOLERANCE = 1e-9
# Every test may run on a handful of values unless it tests min_samples itself.
ANY_SIZE = Settings(min_samples=1)


def padded(rows: Sequence[np.ndarray], *, sort: bool) -> np.ndarray:
    """Rows of different lengths as one matrix, NaN-padded at the end, as the command
    builds them (the reference sorted, NaN last)."""
    width = max((len(row) for row in rows), default=0)
    matrix = np.full((len(rows), width), np.nan)
    for position, row in enumerate(rows):
        matrix[position, : len(row)] = row
    if sort:
        matrix.sort(axis=1)
    return matrix


def run(
    reference: Sequence[np.ndarray],
    current: Sequence[np.ndarray],
    options: Settings = ANY_SIZE,
    categorical: Sequence[CategoricalFeature] = (),
) -> CheckResult:
    names = [f"f{position}" for position in range(len(reference))]
    return check(
        names, padded(reference, sort=True), padded(current, sort=False), categorical, options
    )


def finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def assert_equals_scipy(result: FeatureResult, reference: np.ndarray, current: np.ndarray) -> None:
    ref, cur = finite(reference), finite(current)
    expected = stats.ks_2samp(ref, cur)
    assert result.samples == cur.size
    assert result.scores["ks_statistic"] == pytest.approx(expected.statistic, abs=TOLERANCE)
    assert result.scores["ks"] == pytest.approx(expected.pvalue, abs=TOLERANCE)
    assert result.scores["wasserstein"] == pytest.approx(
        stats.wasserstein_distance(ref, cur), abs=TOLERANCE, rel=TOLERANCE
    )


def normal(seed: int, size: int, shift: float = 0.0, decimals: int | None = None) -> np.ndarray:
    values = np.random.default_rng(seed).normal(shift, 1.0, size)
    return values if decimals is None else np.round(values, decimals)


def with_missing(values: np.ndarray, share: float, seed: int) -> np.ndarray:
    values = values.copy()
    values[np.random.default_rng(seed).random(values.size) < share] = np.nan
    return values


NUMERIC_CASES = {
    "small, exact p": (normal(1, 40), normal(2, 25, 0.3)),
    "equal sizes, exact p": (normal(3, 800), normal(4, 800, 0.1)),
    "heavy ties": (normal(5, 3000, decimals=0), normal(6, 2000, 0.05, decimals=0)),
    "ties across blocks": (np.repeat([0.0, 1.0, 2.0], 400), np.repeat([0.0, 1.0, 2.0], 300)),
    "missing values": (with_missing(normal(7, 900), 0.2, 8), with_missing(normal(9, 700), 0.3, 10)),
    "infinities are missing": (
        np.append(normal(11, 500), [np.inf, -np.inf]),
        np.append(normal(12, 400), np.inf),
    ),
    "one side over 10,000: asymptotic": (normal(13, 12_000), normal(14, 3_000, 0.05)),
    "both over 10,000, ties": (
        normal(15, 30_000, decimals=1),
        normal(16, 20_000, 0.02, decimals=1),
    ),
    # n d^2 in [2.2, 370): scipy sums Smirnov's series (see methods.smirnov).
    "asymptotic, Smirnov's sum": (normal(17, 40_000), normal(18, 40_000, 0.03)),
    "asymptotic, p underflows": (normal(19, 20_000), normal(20, 15_000, 1.0)),
    "identical samples": (normal(21, 600), normal(21, 600)),
}


@pytest.mark.parametrize("case", NUMERIC_CASES)
def test_numeric_scores_equal_scipy(case: str) -> None:
    reference, current = NUMERIC_CASES[case]
    result = run([reference], [current])
    assert_equals_scipy(result.features[0], reference, current)


def test_many_features_at_once_equal_scipy_one_by_one() -> None:
    cases = list(NUMERIC_CASES.values())
    result = run([reference for reference, _ in cases], [current for _, current in cases])
    for feature, (reference, current) in zip(result.features, cases, strict=True):
        assert_equals_scipy(feature, reference, current)


sample_values = st.one_of(
    st.integers(-4, 4).map(float),
    st.floats(-100, 100, allow_nan=False, allow_subnormal=False),
    st.just(math.nan),
)
samples = st.lists(sample_values, min_size=1, max_size=400).map(np.array)


@settings(max_examples=150, deadline=None)
@given(reference=samples, current=samples)
def test_numeric_scores_equal_scipy_on_any_data(reference: np.ndarray, current: np.ndarray) -> None:
    result = run([reference], [current])
    if finite(reference).size == 0 or finite(current).size == 0:
        assert (result.verdict, result.features) == ("InsufficientData", ())
        return
    assert_equals_scipy(result.features[0], reference, current)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shift=st.floats(0, 0.2), ties=st.booleans())
def test_ks_statistic_equals_scipy_on_large_samples(seed: int, shift: float, ties: bool) -> None:
    """Thousands of KS blocks, most skipped: the bounds must never skip the peak."""
    generator = np.random.default_rng(seed)
    reference = np.sort(generator.normal(0, 1, int(generator.integers(1, 30_000))))
    current = np.sort(generator.normal(shift, 1, int(generator.integers(1, 30_000))))
    if ties:
        reference, current = np.round(reference, 1), np.round(current, 1)
    expected = stats.ks_2samp(reference, current, method="asymp").statistic
    assert methods.ks_statistic(reference, current) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    ("n", "nd2"), [(150, 2.5), (5_000, 2.3), (60_000, 11.0), (300_000, 4.0), (1_000_000, 300.0)]
)
def test_smirnov_sum_equals_kstwo(n: int, nd2: float) -> None:
    d = math.sqrt(nd2 / n)
    assert methods._smirnov_summed(np.array([float(n)]), np.array([d]))[0]
    assert 2 * methods.smirnov(n, d) == pytest.approx(stats.kstwo.sf(d, n), abs=1e-12, rel=1e-8)


def plain_psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """PSI as written in the textbook, bin by bin."""
    inner = np.quantile(reference, [level / bins for level in range(1, bins)])
    edges = [-math.inf, *inner, math.inf]
    total = 0.0
    for low, high in itertools.pairwise(edges):
        expected = np.mean((reference >= low) & (reference < high)) or EPSILON
        actual = np.mean((current >= low) & (current < high)) or EPSILON
        total += (actual - expected) * math.log(actual / expected)
    return total


PSI_CASES = {
    "shifted": (normal(30, 5_000), normal(31, 3_000, 0.3), 10),
    "same distribution": (normal(32, 5_000), normal(33, 4_000), 10),
    "ties: equal edges": (normal(34, 5_000, decimals=0), normal(35, 3_000, 0.4, decimals=0), 10),
    "empty bins": (normal(36, 2_000), normal(37, 1_000, 4.0), 20),
    "a constant": (np.full(100, 2.0), np.array([1.0, 2.0, 2.0, 3.0]), 10),
    "few reference values": (np.array([0.5, 3.0, 1.0]), normal(38, 50), 7),
    "one bin": (normal(39, 100), normal(40, 100, 2.0), 1),
}


@pytest.mark.parametrize("case", PSI_CASES)
def test_psi_equals_plain_computation(case: str) -> None:
    reference, current, bins = PSI_CASES[case]
    result = run([reference], [current], Settings(min_samples=1, psi_bins=bins))
    feature = result.features[0]
    assert feature.scores["psi"] == pytest.approx(plain_psi(reference, current, bins), abs=1e-12)
    psi_details = feature.details["psi"]
    edges = psi_details["edges"]
    assert edges[0] == -math.inf and edges[-1] == math.inf
    assert all(low < high for low, high in itertools.pairwise(edges))  # equal edges collapsed
    assert len(psi_details["reference"]) == len(psi_details["current"]) == len(edges) - 1
    assert sum(psi_details["reference"]) == pytest.approx(1.0)
    assert sum(psi_details["current"]) == pytest.approx(1.0)


def shifted_features(shifts: Sequence[float], size: int = 2_000) -> tuple[list, list]:
    reference = [normal(100 + i, size) for i in range(len(shifts))]
    current = [normal(200 + i, size, shift) for i, shift in enumerate(shifts)]
    return reference, current


# Shifts whose p-values straddle 0.05 / 5 and 0.05, so the corrections decide differently.
SHIFTS = [0.0, 0.04, 0.3, 0.1, 0.0]


@pytest.mark.parametrize("correction", ["bonferroni", "fdr", "none"])
def test_ks_corrections(correction: str) -> None:
    reference, current = shifted_features(SHIFTS)
    options = Settings(min_samples=1, psi=False, ks_correction=correction)
    result = run(reference, current, options)
    p_values = np.array(
        [stats.ks_2samp(r, c).pvalue for r, c in zip(reference, current, strict=True)]
    )
    alpha = 0.05
    if correction == "bonferroni":
        expected, applied = p_values < alpha / len(SHIFTS), alpha / len(SHIFTS)
    elif correction == "fdr":
        expected, applied = stats.false_discovery_control(p_values) < alpha, alpha
    else:
        expected, applied = p_values < alpha, alpha
    assert [feature.drifted for feature in result.features] == expected.tolist()
    assert all(feature.details["ks"]["alpha"] == applied for feature in result.features)
    assert [feature.scores["ks"] for feature in result.features] == pytest.approx(
        p_values, abs=TOLERANCE
    )
    if correction == "fdr":
        compared = [feature.details["ks"]["pValue"] for feature in result.features]
        assert compared == pytest.approx(stats.false_discovery_control(p_values), abs=TOLERANCE)


def test_the_corrections_differ_on_these_shifts() -> None:
    """Guards test_ks_corrections: on SHIFTS the three corrections flag different sets."""
    reference, current = shifted_features(SHIFTS)
    flagged = {
        correction: tuple(
            feature.drifted
            for feature in run(
                reference, current, Settings(min_samples=1, psi=False, ks_correction=correction)
            ).features
        )
        for correction in ("bonferroni", "fdr", "none")
    }
    assert len(set(flagged.values())) == 3


def test_bonferroni_counts_only_tested_features() -> None:
    reference, current = shifted_features([0.0, 0.3])
    reference.append(normal(7, 2_000))
    current.append(np.full(2_000, np.nan))  # no current values: not tested
    result = run(reference, current, Settings(min_samples=10, psi=False))
    assert [feature.details["ks"]["alpha"] for feature in result.features[:2]] == [0.025, 0.025]
    untested = result.features[2]
    assert untested.scores == {} and not untested.drifted and untested.samples == 0
    assert result.drifted_feature_share == 0.5


def test_a_shifted_feature_is_flagged_and_the_others_are_not() -> None:
    reference, current = shifted_features([0.0, 0.0, 0.5, 0.0], size=5_000)
    result = run(reference, current, Settings())
    assert [feature.drifted for feature in result.features] == [False, False, True, False]
    assert result.features[2].flagged == ("psi", "ks")
    assert result.verdict == "NoDrift" and result.drifted_feature_share == 0.25


def test_verdict_at_the_drifted_share() -> None:
    reference, current = shifted_features([0.0, 0.5, 0.5, 0.0], size=1_000)
    assert run(reference, current, Settings(min_samples=1)).verdict == "Drift"  # 0.5 >= 0.5
    strict = Settings(min_samples=1, drifted_feature_share=0.75)
    result = run(reference, current, strict)
    assert result.verdict == "NoDrift" and result.drifted_feature_share == 0.5


def test_insufficient_data_below_min_samples() -> None:
    reference, current = shifted_features([1.0], size=499)
    result = run(reference, current, Settings())
    assert result == CheckResult("InsufficientData", 499, None, ())
    assert run(reference, current, Settings(min_samples=499)).verdict == "Drift"


def test_insufficient_data_when_no_feature_has_enough_values() -> None:
    reference = [normal(1, 1_000)]
    current = [with_missing(normal(2, 1_000), 0.6, 3)]
    result = run(reference, current, Settings())
    assert result.verdict == "InsufficientData" and result.samples == 1_000


def test_the_deciding_method_and_score() -> None:
    # Beyond PSI's threshold of 0.5 only the large shift; KS rejects both shifts.
    reference, current = shifted_features([0.0, 1.0, 0.3], size=3_000)
    result = run(reference, current, Settings(min_samples=1, psi_threshold=0.5))
    quiet, loud, ks_only = result.features
    assert (quiet.method, quiet.drifted, quiet.score) == ("psi", False, quiet.scores["psi"])
    assert (loud.method, loud.score, loud.flagged) == ("psi", loud.scores["psi"], ("psi", "ks"))
    assert (ks_only.method, ks_only.score, ks_only.flagged) == ("ks", ks_only.scores["ks"], ("ks",))
    without_psi = run(reference, current, Settings(min_samples=1, psi=False))
    assert [feature.method for feature in without_psi.features] == ["ks", "ks", "ks"]
    assert set(without_psi.features[0].scores) == {"ks", "ks_statistic", "wasserstein"}


def test_no_numeric_method_leaves_numeric_features_out() -> None:
    reference, current = shifted_features([0.0])
    result = run(reference, current, Settings(min_samples=1, psi=False, ks=False))
    assert result.features == () and result.verdict == "InsufficientData"


def category_values(counts: dict[str | None, int], seed: int) -> np.ndarray:
    values = np.array([value for value, count in counts.items() for _ in range(count)], object)
    return np.random.default_rng(seed).permutation(values)


def test_categorical_scores_equal_scipy() -> None:
    reference = {"red": 500, "green": 300, "blue": 200}
    current = category_values({"red": 420, "green": 300, "blue": 230, "violet": 50, None: 9}, 1)
    result = run([], [], categorical=[CategoricalFeature("colour", reference, current)])
    feature = result.features[0]
    observed = np.array([420, 300, 230, 50])
    shares = np.array([0.5, 0.3, 0.2, EPSILON])  # violet is new: EPSILON's share
    expected = shares / shares.sum() * observed.sum()
    test = stats.chisquare(observed, expected)
    assert feature.samples == 1_000
    assert feature.scores["chi_squared"] == pytest.approx(test.pvalue, abs=TOLERANCE)
    assert feature.scores["chi_squared_statistic"] == pytest.approx(test.statistic, rel=TOLERANCE)
    js = distance.jensenshannon([500, 300, 200, 0], observed, base=2)
    assert feature.scores["jensen_shannon"] == pytest.approx(js, abs=TOLERANCE)
    assert feature.details["categories"] == ["red", "green", "blue", "violet"]
    assert feature.drifted and feature.method == "chi_squared"


def test_unknown_categories_join_the_reference_other_bucket() -> None:
    reference = {"a": 600, "b": 300, OTHER: 100}
    current = category_values({"a": 590, "b": 310, "x": 60, "y": 40}, 2)
    result = run([], [], categorical=[CategoricalFeature("letter", reference, current)])
    feature = result.features[0]
    assert feature.details["categories"] == ["a", "b", OTHER]
    assert feature.details["currentCounts"] == [590, 310, 100]
    test = stats.chisquare([590, 310, 100], [600, 300, 100])
    assert feature.scores["chi_squared"] == pytest.approx(test.pvalue, abs=TOLERANCE)
    assert not feature.drifted and feature.method == "chi_squared"


def test_jensen_shannon_alone_decides() -> None:
    reference = {"a": 50, "b": 50}
    current = category_values({"a": 70, "b": 30}, 3)
    options = Settings(min_samples=1, chi_squared=False, jensen_shannon_threshold=0.1)
    feature = run([], [], options, [CategoricalFeature("ab", reference, current)]).features[0]
    expected = distance.jensenshannon([0.5, 0.5], [0.7, 0.3], base=2)
    assert feature.score == pytest.approx(expected, abs=TOLERANCE)
    assert feature.method == "jensen_shannon" and feature.drifted == (expected >= 0.1)
    assert set(feature.scores) == {"jensen_shannon"}


def test_mixed_features_share() -> None:
    reference, current = shifted_features([0.0, 0.6], size=1_000)
    drifted = CategoricalFeature("c", {"a": 1, "b": 1}, category_values({"a": 900, "b": 100}, 4))
    result = run(reference, current, Settings(), [drifted])
    assert [feature.type for feature in result.features] == ["numeric", "numeric", "categorical"]
    assert result.drifted_feature_share == pytest.approx(2 / 3)
    assert result.verdict == "Drift" and result.samples == 1_000


def test_settings_refuse_an_unknown_correction() -> None:
    with pytest.raises(ValueError, match="ks_correction"):
        Settings(ks_correction="holm")
