"""Benchmark: profile and train on a large synthetic CSV, beside pyarrow's plain read.

Generates a seeded CSV (default 1,000,000 rows, 20 numeric features and a binary `target`)
in a temporary directory, then runs in child processes, measuring wall time and peak memory
(the child's max RSS from os.wait4):
  (a) pyarrow.csv.read_csv of the file, the anchor;
  (b) gyre-runtime profile;
  (c) gyre-runtime train --algorithm gradient_boosting_classifier, pinned to the profile's digest.
The target is profile within 1.5x of the read. Each of (a) and (b) runs --repeat times and
the best run counts (the median is printed too), since a shared machine's noise only ever
adds time.

    python bench/train.py [--rows 1000000] [--features 20] [--repeat 3] [--skip-train]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

PROFILE_TARGET_RATIO = 1.5
# Keeps scikit-learn's (exact, single-threaded) gradient boosting to a few minutes on 1M rows.
TRAIN_HYPERPARAMETERS = {"n_estimators": 20, "max_depth": 3, "subsample": 0.3, "learning_rate": 0.3}
GENERATE_BATCH_ROWS = 200_000


@dataclass(frozen=True)
class Measurement:
    """One child process: wall seconds, peak RSS in MiB, exit status, termination message."""

    seconds: float
    peak_mib: float
    status: int
    message: dict[str, Any]


def main() -> int:
    """Generate the data, run the three measurements, print them beside the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="runs of read and profile")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gyre-bench-") as workdir:
        work = Path(workdir)
        data = work / "data.csv"
        started = time.perf_counter()
        generate_csv(data, args.rows, args.features, args.seed)
        print(
            f"data: {args.rows:,} rows x {args.features} features + target, "
            f"{data.stat().st_size / 2**20:.0f} MiB, generated in "
            f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs"
        )
        reads = repeated(args.repeat, lambda: run_child(work, read_command(data)))
        read = report("(a) pyarrow.csv.read_csv", reads)
        profiles = repeated(args.repeat, lambda: run_child(work, profile_command(data, work)))
        profile = report("(b) gyre-runtime profile", profiles)
        ratio = profile.seconds / read.seconds
        median_ratio = median(profiles) / median(reads)
        verdict = "meets" if ratio <= PROFILE_TARGET_RATIO else "misses"
        print(
            f"profile / read: {ratio:.2f}x best of {len(reads)}, {median_ratio:.2f}x median "
            f"({verdict} the target: within {PROFILE_TARGET_RATIO}x)"
        )
        if args.skip_train or profile.status != 0:
            return profile.status
        print(f"train hyperparameters: {json.dumps(TRAIN_HYPERPARAMETERS)}")
        train = run_child(work, train_command(data, work, profile.message["digest"], args))
        report("(c) gyre-runtime train gradient_boosting_classifier", [train])
        return train.status


def generate_csv(path: Path, rows: int, features: int, seed: int) -> None:
    """Normal features, a target from a noisy linear rule: learnable, not trivial."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=features)
    names = [f"f{i:02d}" for i in range(features)]
    with pacsv.CSVWriter(
        path, pa.schema([*((n, pa.float64()) for n in names), ("target", pa.int64())])
    ) as writer:
        for start in range(0, rows, GENERATE_BATCH_ROWS):
            size = min(GENERATE_BATCH_ROWS, rows - start)
            x = rng.normal(
                loc=np.arange(features), scale=1 + np.arange(features) / 4, size=(size, features)
            )
            score = (x - np.arange(features)) @ weights + rng.normal(scale=2.0, size=size)
            columns = {name: x[:, i] for i, name in enumerate(names)}
            columns["target"] = (score > 0).astype(np.int64)
            writer.write_table(pa.table(columns))


def read_command(data: Path) -> list[str]:
    """The anchor: pyarrow's multi-threaded CSV read of the file, nothing else."""
    return [sys.executable, "-c", f"import pyarrow.csv as c; c.read_csv({str(data)!r})"]


def profile_command(data: Path, work: Path) -> list[str]:
    """gyre-runtime profile of the file, as the operator's profile Job runs it."""
    return [
        sys.executable, "-m", "gyre_runtime.cli", "profile",
        "--dataset", "bench", "--source", data.as_uri(), "--format", "csv",
        "--artifact-root", (work / "artifacts").as_uri(),
    ]  # fmt: skip


def train_command(data: Path, work: Path, digest: str, args: argparse.Namespace) -> list[str]:
    """gyre-runtime train of gradient boosting on the file, pinned to the profiled digest."""
    features = [f"f{i:02d}" for i in range(args.features)]
    return [
        sys.executable, "-m", "gyre_runtime.cli", "train",
        "--run", "bench", "--model", "bench", "--algorithm", "gradient_boosting_classifier",
        "--dataset-uri", data.as_uri(), "--format", "csv", "--dataset-digest", digest,
        "--features", json.dumps(features), "--target", "target",
        "--hyperparameters", json.dumps(TRAIN_HYPERPARAMETERS),
        "--validation-fraction", "0.2", "--seed", str(args.seed),
        "--output-uri", (work / "artifacts" / "models" / "bench" / "1").as_uri(),
    ]  # fmt: skip


def run_child(work: Path, command: list[str]) -> Measurement:
    """Run a command; its wall time, peak RSS (os.wait4) and termination message."""
    message_path = work / "termination-log"
    message_path.unlink(missing_ok=True)
    env = {**os.environ, "GYRE_TERMINATION_MESSAGE_PATH": str(message_path)}
    started = time.perf_counter()
    # The child's stdout repeats its termination message: keep it off the report.
    quiet = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
    pid = os.posix_spawn(command[0], command, env, file_actions=quiet)
    _, wait_status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    message = json.loads(message_path.read_text()) if message_path.exists() else {}
    status = os.waitstatus_to_exitcode(wait_status)
    if status != 0:
        print(f"  {command[3] if len(command) > 3 else command[0]} failed: {message}")
    return Measurement(seconds, usage.ru_maxrss / 1024, status, message)


def repeated(repeat: int, measure: Any) -> list[Measurement]:
    """The measurements of `repeat` runs (at least one)."""
    return [measure() for _ in range(max(1, repeat))]


def median(runs: list[Measurement]) -> float:
    """The median wall time of some runs."""
    return float(np.median([run.seconds for run in runs]))


def report(label: str, runs: list[Measurement]) -> Measurement:
    """Print the best run (and every run's time when there are several); return the best."""
    best = min(runs, key=lambda run: run.seconds)
    extra = {k: v for k, v in best.message.items() if k in ("rows", "metrics")}
    every = f" (runs: {', '.join(f'{run.seconds:.2f}' for run in runs)} s)" if len(runs) > 1 else ""
    print(
        f"{label}: {best.seconds:.2f} s{every}, peak RSS {best.peak_mib:.0f} MiB"
        + (f", {json.dumps(extra, sort_keys=True)}" if extra else "")
    )
    return best


if __name__ == "__main__":
    sys.exit(main())
