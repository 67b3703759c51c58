"""`gyre-runtime fetch`: a pinned data set copied into the pod, its digest checked."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gyre_runtime.cli import main
from gyre_runtime.tables import load_table


def test_fetch_copies_a_file_whose_digest_matches(
    wine_csv: Any, tmp_path: Path, termination_message: Callable[[], dict[str, Any]]
) -> None:
    digest = hashlib.sha256(wine_csv.path.read_bytes()).hexdigest()
    output = tmp_path / "input" / "wine.csv"
    assert main(["fetch", "--uri", wine_csv.uri, "--sha256", digest, "--output", str(output)]) == 0
    assert output.read_bytes() == wine_csv.path.read_bytes()
    assert termination_message() == {"path": str(output), "sha256": digest, "files": 1}


def test_fetch_of_a_prefix_checks_the_prefix_digest(
    wine_csv: Any, tmp_path: Path, termination_message: Callable[[], dict[str, Any]]
) -> None:
    prefix = tmp_path / "parts"
    (prefix / "2026").mkdir(parents=True)
    shutil.copy(wine_csv.path, prefix / "a.csv")
    shutil.copy(wine_csv.path, prefix / "2026" / "b.csv")
    (prefix / "_SUCCESS").write_text("")
    digest = load_table(prefix.as_uri() + "/", "csv").digest
    output = tmp_path / "input"
    args = ["fetch", "--uri", prefix.as_uri() + "/", "--sha256", digest, "--output", str(output)]
    assert main(args) == 0
    assert sorted(p.relative_to(output).as_posix() for p in output.rglob("*.csv")) == [
        "2026/b.csv",
        "a.csv",
    ]
    assert termination_message()["files"] == 2


def test_fetch_refuses_data_that_changed_since_it_was_pinned(
    wine_csv: Any, tmp_path: Path, termination_message: Callable[[], dict[str, Any]]
) -> None:
    pinned = "0" * 64
    output = tmp_path / "wine.csv"
    assert main(["fetch", "--uri", wine_csv.uri, "--sha256", pinned, "--output", str(output)]) == 1
    reported = termination_message()
    assert reported["reason"] == "DigestMismatch"
    assert f"the run pinned {pinned}" in reported["message"]


def test_fetch_of_a_missing_source_is_unreadable(
    tmp_path: Path, termination_message: Callable[[], dict[str, Any]]
) -> None:
    missing = (tmp_path / "nowhere.csv").as_uri()
    args = ["fetch", "--uri", missing, "--sha256", "0" * 64, "--output", str(tmp_path / "x")]
    assert main(args) == 1
    assert termination_message()["reason"] == "SourceUnreadable"
    assert "nowhere.csv" in termination_message()["message"]
