"""The benchmark suite runs end to end at tiny sizes and writes every section of its report.

This checks only that ``python -m bench --smoke`` works; it asserts no timing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_support import REPOSITORY, missing_real_runtime

pytestmark = pytest.mark.runc

SECTIONS = (
    "## Lifecycle",
    "## Concurrency",
    "## CLI with many containers",
    "## Journal appends",
    "## Replay and restart",
    "## Memory and idle CPU",
    "## Recovery after a crash",
)


def test_smoke_run_writes_every_section(tmp_path: Path) -> None:
    reason = missing_real_runtime()
    if reason is not None:
        pytest.skip(reason)
    report = tmp_path / "benchmarks.md"

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(report)],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=900,
    )

    assert result.returncode == 0, result.stderr[-4000:]
    text = report.read_text()
    for heading in SECTIONS:
        assert heading in text, f"{heading!r} missing from the report"
    assert "This group failed" not in text
    assert (tmp_path / "bench-latency.png").stat().st_size > 0
