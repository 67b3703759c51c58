"""Benchmark: the drift check's statistics beside scipy, Alibi Detect and Evidently.

Generates seeded data (default 1,000,000 rows x 20 features, standard normal) for the
reference and for the current window, where SHIFTS moves some features a little and some a
lot, and saves both as (features, rows) float64 arrays. Each contender then runs in its own
child process, which loads the arrays, notes its resident memory, and reports its wall
time, its peak memory above that (getrusage's max RSS) and what it flagged:
  floor       np.sort of every feature's column of both arrays, each column contiguous: the
              sorting that a check of unsorted data cannot avoid;
  gyre        gyre_runtime.drift.methods.check with the defaults (PSI, KS with Bonferroni's
              correction, the Wasserstein distance on every feature), the reference already
              sorted, as the profile's sample is kept;
  gyre+sort   the same, sorting the reference too;
  scipy       scipy.stats.ks_2samp feature by feature;
  alibi       Alibi Detect's KSDrift(p_val=0.05, correction="bonferroni"), built and run;
  evidently   Evidently's Report([DataDriftPreset()]) on pandas DataFrames of the arrays
              (slow: it runs once).
floor and gyre run --repeat times and the fastest run counts, since a shared machine's
noise only ever adds time. Then: which features each method flags, and how far gyre's KS
p-values are from scipy's.

Last, `gyre-runtime drift` end to end, as a check Job runs it (wall time and peak RSS of
the process): the reference written by `gyre-runtime profile` from a CSV of the reference
rows (profile.json and its 100,000-row sample.parquet), the window the current rows logged
in the request log's layout (`<root>/requests/<service>/<date>/<pod>-<seq>.parquet`,
float32 inputs as a model receives them, LOG_FILE_ROWS rows a file).

    python bench/drift.py [--rows 1000000] [--features 20] [--repeat 3] [--quick]
                          [--contenders floor,gyre,gyre+sort,scipy,alibi,evidently]
                          [--libraries-python PATH] [--skip-command]

Alibi Detect pins numpy < 2: give the comparison libraries an environment of their own
(python -m venv /tmp/drift-libraries && /tmp/drift-libraries/bin/pip install alibi-detect
evidently) and pass its interpreter as --libraries-python; pip install -e '.[bench]' also
installs them, with numpy < 2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CONTENDERS = ("floor", "gyre", "gyre+sort", "scipy", "alibi", "evidently")
# The contenders run by --libraries-python.
LIBRARIES = {"alibi": "alibi_detect", "evidently": "evidently"}
REPEATED = ("floor", "gyre", "gyre+sort")
# Mean shifts of the current window's features, in standard deviations; the rest stay put.
SHIFTS = {12: 0.002, 13: 0.005, 14: 0.01, 15: 0.03, 16: 0.1, 17: 0.2, 18: 0.5, 19: 1.0}
ALPHA = 0.05
QUICK_ROWS = 100_000
LOG_FILE_ROWS = 100_000
SMALL_WINDOW = 1_000
SERVICE = "bench"

# Figures measured on a machine like ours: 1,000,000 x 20, shifts as above.
ANCHORS = {
    "floor": "~0.45 s",
    "scipy": "3.2 s",
    "alibi": "3.3 s",
    "evidently": "31-80 s",
}
TARGET_FLOOR_RATIO = 2.0
TARGET_SPEEDUP = 3.5
TARGET_MEMORY_RATIO = 2.0


@dataclass(frozen=True)
class Run:
    """One child's report: seconds, peak memory above its start, what it flagged."""

    contender: str
    seconds: float
    peak_mib: float
    flagged: dict[str, list[str]]
    note: str
    p_values: list[float]


def main() -> int:
    """Generate the data, run every contender in a child, print the tables."""
    if sys.argv[1:2] == ["--child"]:
        contender, directory = sys.argv[2:4]
        print(json.dumps(child(contender, Path(directory))))
        return 0
    options = parse_options()
    rows = QUICK_ROWS if options.quick else options.rows
    with tempfile.TemporaryDirectory(prefix="gyre-bench-drift-") as workdir:
        work = Path(workdir)
        started = time.perf_counter()
        names = generate(work, rows, options.features, options.seed)
        arrays_mib = 2 * rows * options.features * 8 / 2**20
        print(
            f"data: {rows:,} rows x {options.features} features, reference and current "
            f"({arrays_mib:.0f} MiB of float64), generated in "
            f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs"
        )
        print(
            "shifted features (standard deviations): "
            + ", ".join(f"{names[f]} {shift}" for f, shift in SHIFTS.items() if f < len(names))
        )
        runs = []
        for contender in options.contenders:
            python = options.libraries_python if contender in LIBRARIES else sys.executable
            repeat = options.repeat if contender in REPEATED and not options.quick else 1
            run = measure(python, contender, work, repeat)
            if run is not None:
                runs.append(run)
        print_table(runs, arrays_mib)
        print_agreement(runs, names)
        if not options.skip_command:
            return command_end_to_end(work, names)
    return 0


def parse_options() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="runs of floor and gyre")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, one run each")
    parser.add_argument(
        "--contenders",
        type=lambda text: [name for name in text.split(",") if name],
        default=list(CONTENDERS),
    )
    parser.add_argument("--skip-command", action="store_true", help="no gyre-runtime drift run")
    parser.add_argument(
        "--libraries-python",
        default=sys.executable,
        help="the interpreter with alibi-detect and evidently installed",
    )
    options = parser.parse_args()
    unknown = set(options.contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}; known: {', '.join(CONTENDERS)}")
    return options


def feature_names(features: int) -> list[str]:
    """f00, f01, ..."""
    return [f"f{position:02d}" for position in range(features)]


def generate(work: Path, rows: int, features: int, seed: int) -> list[str]:
    """Save reference.npy and current.npy: (features, rows), current shifted by SHIFTS."""
    generator = np.random.default_rng(seed)
    np.save(work / "reference.npy", generator.standard_normal((features, rows)))
    current = generator.standard_normal((features, rows))
    for feature, shift in SHIFTS.items():
        if feature < features:
            current[feature] += shift
    np.save(work / "current.npy", current)
    return feature_names(features)


def measure(python: str, contender: str, work: Path, repeat: int) -> Run | None:
    """The fastest of `repeat` child runs of a contender (None when it cannot run)."""
    runs = []
    for _ in range(max(1, repeat)):
        # -P: bench/operator.py must not shadow the standard library's operator module.
        command = [python, "-P", str(Path(__file__).resolve()), "--child", contender, str(work)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"skipping {contender}: {last}")
            return None
        runs.append(Run(contender=contender, **json.loads(done.stdout.splitlines()[-1])))
        print(f"  {contender}: {runs[-1].seconds:.2f} s", flush=True)
    return min(runs, key=lambda run: run.seconds)


# --- In the child -------------------------------------------------------------------------


# Flagged feature names per method, a note, and KS p-values per feature (when computed).
Outcome = tuple[dict[str, list[str]], str, list[float]]


def child(contender: str, work: Path) -> dict[str, Any]:
    """Load the data, prepare one contender (imports, layout), then time its run alone."""
    reference = np.load(work / "reference.npy")
    current = np.load(work / "current.npy")
    execute = CHILDREN[contender](reference, current, feature_names(reference.shape[0]))
    before = resident_mib()
    started = time.perf_counter()
    flagged, note, p_values = execute()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "peak_mib": peak - before,
        "flagged": flagged,
        "note": note,
        "p_values": p_values,
    }


def resident_mib() -> float:
    """This process's resident memory now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def flagged_names(names: Sequence[str], mask: Any) -> list[str]:
    """The names where a mask is true."""
    return [name for name, flag in zip(names, mask, strict=True) if flag]


def floor(reference: Any, current: Any, names: list[str]) -> Callable[[], Outcome]:
    def run() -> Outcome:
        for arrays in (reference, current):
            for column in arrays:
                np.sort(column)
        return {}, "", []

    return run


def gyre(reference: Any, current: Any, names: list[str], *, sort: bool) -> Callable[[], Outcome]:
    from gyre_runtime.drift import methods

    if not sort:
        reference.sort(axis=1)

    def run() -> Outcome:
        if sort:
            reference.sort(axis=1)
        result = methods.check(names, reference, current, [], methods.Settings())
        flags: dict[str, list[str]] = {"PSI": [], "KS": []}
        for feature in result.features:
            for method, label in (("psi", "PSI"), ("ks", "KS")):
                if method in feature.flagged:
                    flags[label].append(feature.name)
        flags["gyre"] = [feature.name for feature in result.features if feature.drifted]
        note = f"verdict {result.verdict}, share {result.drifted_feature_share:.2f}"
        return flags, note, [feature.scores["ks"] for feature in result.features]

    return run


def scipy_loop(reference: Any, current: Any, names: list[str]) -> Callable[[], Outcome]:
    from scipy import stats

    def run() -> Outcome:
        pairs = zip(reference, current, strict=True)
        p_values = np.array([stats.ks_2samp(r, c).pvalue for r, c in pairs])
        flags = flagged_names(names, p_values < ALPHA / len(names))
        return {"scipy": flags}, "", p_values.tolist()

    return run


def alibi(reference: Any, current: Any, names: list[str]) -> Callable[[], Outcome]:
    from alibi_detect.cd import KSDrift

    def run() -> Outcome:
        # Instances as rows: the transposed views, not copies.
        detector = KSDrift(reference.T, p_val=ALPHA, correction="bonferroni")
        found = detector.predict(current.T, drift_type="batch", return_p_val=True)["data"]
        flags = flagged_names(names, found["p_val"] < found["threshold"])
        return {"alibi": flags}, f"batch is_drift {found['is_drift']}", []

    return run


def evidently(reference: Any, current: Any, names: list[str]) -> Callable[[], Outcome]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    # (rows, features) views of the C-ordered (features, rows) arrays: pandas keeps them.
    reference_frame = pd.DataFrame(reference.T, columns=names, copy=False)
    current_frame = pd.DataFrame(current.T, columns=names, copy=False)

    def run() -> Outcome:
        snapshot = Report([DataDriftPreset()]).run(current_frame, reference_frame).dict()
        flags, methods = [], set()
        for metric in snapshot["metrics"]:
            config = metric["config"]
            if "column" not in config:
                continue
            methods.add(f"{config['method']} at {config['threshold']}")
            # A p-value drifts below its threshold, a distance at or above it.
            value, threshold = metric["value"], config["threshold"]
            if value < threshold if "p_value" in config["method"] else value >= threshold:
                flags.append(config["column"])
        return {"evidently": flags}, "; ".join(sorted(methods)), []

    return run


CHILDREN: dict[str, Callable[[Any, Any, list[str]], Callable[[], Outcome]]] = {
    "floor": floor,
    "gyre": lambda reference, current, names: gyre(reference, current, names, sort=False),
    "gyre+sort": lambda reference, current, names: gyre(reference, current, names, sort=True),
    "scipy": scipy_loop,
    "alibi": alibi,
    "evidently": evidently,
}


# --- The report ---------------------------------------------------------------------------


LABELS = {
    "floor": "floor: np.sort of every column of both",
    "gyre": "gyre check (reference pre-sorted)",
    "gyre+sort": "gyre check incl. sorting the reference",
    "scipy": "scipy.stats.ks_2samp, feature by feature",
    "alibi": "alibi-detect KSDrift (bonferroni)",
    "evidently": "Evidently DataDriftPreset",
}


def print_table(runs: Sequence[Run], arrays_mib: float) -> None:
    """Time and memory of each contender beside its anchor, then the targets."""
    by_name = {run.contender: run for run in runs}
    floor = by_name.get("floor")
    print(f"\n{'contender':44} {'wall s':>8} {'x floor':>8} {'peak +MiB':>10}  anchor / note")
    for run in runs:
        ratio = f"{run.seconds / floor.seconds:.2f}" if floor else "-"
        extra = ANCHORS.get(run.contender, "")
        note = "; ".join(part for part in (extra and f"anchor {extra}", run.note) if part)
        print(
            f"{LABELS[run.contender]:44} {run.seconds:8.2f} {ratio:>8} {run.peak_mib:10.0f}  {note}"
        )
    gyre = by_name.get("gyre")
    if gyre is None:
        return
    print(f"\ntargets for the gyre check (arrays: {arrays_mib:.0f} MiB):")
    if floor:
        verdict(
            f"within {TARGET_FLOOR_RATIO}x of the floor",
            gyre.seconds <= TARGET_FLOOR_RATIO * floor.seconds,
            f"{gyre.seconds / floor.seconds:.2f}x",
        )
    for other in ("scipy", "alibi"):
        if other in by_name:
            speedup = by_name[other].seconds / gyre.seconds
            verdict(
                f">= {TARGET_SPEEDUP}x faster than {other}",
                speedup >= TARGET_SPEEDUP,
                f"{speedup:.1f}x",
            )
    total = arrays_mib + gyre.peak_mib
    verdict(
        f"peak memory <= {TARGET_MEMORY_RATIO}x the arrays",
        total <= TARGET_MEMORY_RATIO * arrays_mib,
        f"{total:.0f} MiB = arrays + {gyre.peak_mib:.0f} MiB, {total / arrays_mib:.2f}x",
    )


def verdict(target: str, met: bool, figure: str) -> None:
    """One line: the target, met or missed, and the figure."""
    print(f"  {target}: {'met' if met else 'MISSED'} ({figure})")


def print_agreement(runs: Sequence[Run], names: Sequence[str]) -> None:
    """Which features each method flagged, one column per method; KS p-values compared."""
    by_name = {run.contender: run for run in runs}
    if "gyre" in by_name and "scipy" in by_name:
        gap = np.abs(np.subtract(by_name["gyre"].p_values, by_name["scipy"].p_values)).max()
        print(f"\nKS p-values, gyre vs scipy.stats.ks_2samp: largest difference {gap:.1e}")
    columns: dict[str, list[str]] = {}
    for run in runs:
        columns.update(run.flagged)
    if not columns:
        return
    print("\nflagged features (x) by method; shift in standard deviations:")
    print(f"{'feature':8} {'shift':>6}  " + " ".join(f"{label:>9}" for label in columns))
    for position, name in enumerate(names):
        marks = " ".join(f"{'x' if name in flags else '.':>9}" for flags in columns.values())
        print(f"{name:8} {SHIFTS.get(position, 0.0):6}  {marks}")


# --- gyre-runtime drift, end to end -------------------------------------------------------


def command_end_to_end(work: Path, names: Sequence[str]) -> int:
    """Profile the reference rows, log the current rows, time gyre-runtime drift on them."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    reference = np.load(work / "reference.npy")
    rows = reference.shape[1]
    data = work / "reference.csv"
    started = time.perf_counter()
    pacsv.write_csv(pa.table(dict(zip(names, reference, strict=True))), data)
    del reference
    root = work / "artifacts"
    profile = run_command(work, profile_command(data, root))
    if profile.status != 0:
        return profile.status
    requests = write_request_logs(work, root, names)
    print(
        f"\ngyre-runtime drift: reference profiled from a {rows:,}-row CSV "
        f"({profile.seconds:.1f} s), {rows:,} requests logged in {-(-rows // LOG_FILE_ROWS)} "
        f"files; set up in {time.perf_counter() - started:.1f} s"
    )
    # The small window shows the fixed costs: interpreter, imports, reading the reference.
    for window in (SMALL_WINDOW, rows):
        command = drift_command(profile.message["profileUri"], requests, window, root)
        checked = run_command(work, command)
        result = checked.message
        drifted = [feature["name"] for feature in result.get("features", []) if feature["drifted"]]
        print(
            f"gyre-runtime drift, window of {window:,} requests: {checked.seconds:.2f} s, "
            f"peak RSS {checked.peak_mib:.0f} MiB; verdict {result.get('verdict')}, "
            f"samples {result.get('samples')}, reference rows {result.get('referenceRows')}, "
            f"drifted: {', '.join(drifted) or 'none'}"
        )
        if checked.status != 0:
            return checked.status
    return 0


@dataclass(frozen=True)
class Command:
    """A gyre-runtime run: wall seconds, peak RSS (os.wait4), exit status, its result."""

    seconds: float
    peak_mib: float
    status: int
    message: dict[str, Any]


def run_command(work: Path, command: list[str]) -> Command:
    """Run a command as a Job would; its wall time, peak RSS and termination message."""
    message_path = work / "termination-log"
    message_path.unlink(missing_ok=True)
    env = {**os.environ, "GYRE_TERMINATION_MESSAGE_PATH": str(message_path)}
    started = time.perf_counter()
    # The child's stdout repeats its termination message: keep it off the report.
    process = subprocess.Popen(command, env=env, cwd=work, stdout=subprocess.DEVNULL)
    _, wait_status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    seconds = time.perf_counter() - started
    message = json.loads(message_path.read_text()) if message_path.exists() else {}
    if process.returncode != 0:
        print(f"  {command[3]} failed: {message}")
    return Command(seconds, usage.ru_maxrss / 1024, process.returncode, message)


def profile_command(data: Path, root: Path) -> list[str]:
    """gyre-runtime profile of the reference CSV, as the operator's profile Job runs it."""
    return [
        sys.executable, "-m", "gyre_runtime.cli", "profile",
        "--dataset", "bench", "--source", data.as_uri(), "--format", "csv",
        "--artifact-root", root.as_uri(),
    ]  # fmt: skip


def drift_command(profile_uri: str, requests: str, rows: int, root: Path) -> list[str]:
    """gyre-runtime drift of the newest `rows` requests, as a DriftMonitor's check Job."""
    return [
        sys.executable, "-m", "gyre_runtime.cli", "drift",
        "--monitor", "bench", "--check-id", "bench-1", "--reference", profile_uri,
        "--requests", requests, "--window-requests", str(rows),
        "--report", (root / "drift" / "bench" / "bench-1.json").as_uri(),
    ]  # fmt: skip


def write_request_logs(work: Path, root: Path, names: Sequence[str]) -> str:
    """The current rows as the server logs them: float32 inputs, one file per
    LOG_FILE_ROWS rows, the last minute's timestamps; returns the service's requests URI."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    current = np.load(work / "current.npy").astype(np.float32)
    rows = current.shape[1]
    now = time.time()
    stamps = ((now - 60 + 60 * np.arange(rows) / rows) * 1e6).astype(np.int64)
    folder = root / "requests" / SERVICE / time.strftime("%Y-%m-%d", time.gmtime(now - 60))
    folder.mkdir(parents=True)
    for sequence, start in enumerate(range(0, rows, LOG_FILE_ROWS)):
        part = slice(start, start + LOG_FILE_ROWS)
        size = len(stamps[part])
        columns = {
            "request_id": pa.array([f"r{start + i}" for i in range(size)]),
            "timestamp": pa.array(stamps[part], pa.timestamp("us", tz="UTC")),
            "model_version": pa.array(["1"] * size).dictionary_encode(),
            **{name: current[position, part] for position, name in enumerate(names)},
        }
        pq.write_table(pa.table(columns), folder / f"{SERVICE}-0-{sequence:06d}.parquet")
    return (root / "requests" / SERVICE).as_uri() + "/"


if __name__ == "__main__":
    sys.exit(main())
