"""False alarms: the default policy on the wine data the demo and the loop scenario use.

The reference is wine's profile made by the real `gyre-runtime profile`; windows are traffic
as the load generator sends it (wine rows resampled with small noise, float32 as the server
logs them). Twenty unshifted windows with different seeds give no Drift verdict; shifted
windows drift on exactly the shifted features.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gyre_local.workload import SHIFTED_FEATURES, resample, shifted, wine, write_wine_csv
from gyre_runtime.cli import main
from gyre_runtime.drift.methods import CheckResult, Settings, check
from gyre_runtime.drift.reference import Reference, load_reference

WINDOW_ROWS = 1000  # examples/04-driftmonitor.yaml checks the last 2000; the demo 600
SEEDS = range(20)
WINE_SCHEMA = {  # as examples/01-dataset.yaml declares it
    "target": "target",
    "features": [{"name": name, "type": "numeric"} for name in wine().feature_names],
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """Wine's profile and sample, as the Dataset's profile Job writes them."""
    directory = tmp_path_factory.mktemp("wine")
    source = directory / "wine.csv"
    write_wine_csv(source)
    message = directory / "termination-log"
    argv = [
        "profile", "--dataset", "wine", "--source", source.as_uri(), "--format", "csv",
        "--artifact-root", (directory / "artifacts").as_uri(),
        "--schema", json.dumps(WINE_SCHEMA),
    ]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GYRE_TERMINATION_MESSAGE_PATH", str(message))
        assert main(argv) == 0, message.read_text()
    return load_reference(json.loads(message.read_text())["profileUri"], None)


def window_check(
    reference: Reference, seed: int, *, moved: bool, rows: int = WINDOW_ROWS
) -> CheckResult:
    features, _ = resample(rows, seed)
    if moved:
        features = shifted(features, seed)
    names = list(wine().feature_names)
    logged = features.astype(np.float32).astype(np.float64)  # what the request log holds
    current = np.ascontiguousarray(logged[:, [names.index(n) for n in reference.numeric]].T)
    return check(reference.numeric, reference.sorted_values, current, (), Settings())


def test_twenty_unshifted_windows_raise_no_alarm(reference: Reference) -> None:
    results = [window_check(reference, seed, moved=False) for seed in SEEDS]
    assert [r.verdict for r in results] == ["NoDrift"] * len(SEEDS)
    flagged = sum(f.drifted for r in results for f in r.features)
    # A feature may cross one threshold by chance; the dataset verdict needs half of them.
    assert max(r.drifted_feature_share or 0.0 for r in results) < 0.25, flagged


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shifted_windows_drift_on_exactly_the_shifted_features(
    reference: Reference, seed: int
) -> None:
    result = window_check(reference, seed, moved=True)
    assert result.verdict == "Drift"
    assert {f.name for f in result.features if f.drifted} == set(SHIFTED_FEATURES)


def test_the_demo_window_is_enough_to_tell(reference: Reference) -> None:
    """The demo checks 600 requests: enough for the verdict either way."""
    assert window_check(reference, 7, moved=False, rows=600).verdict == "NoDrift"
    assert window_check(reference, 7, moved=True, rows=600).verdict == "Drift"


def test_wine_reference_is_the_whole_data_set(reference: Reference) -> None:
    assert reference.rows == len(wine().target)
    assert set(reference.numeric) == set(wine().feature_names)
