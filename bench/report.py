"""Write the benchmark report (Markdown) and the lifecycle latency plot (PNG)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil

from bench.common import REPOSITORY, Section, Table


def _first_line(argv: Sequence[str]) -> str:
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    return (result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr) else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit(outputs: Sequence[Path] = ()) -> str:
    """Return the short HEAD commit, marked if tracked files other than ``outputs`` have changed.

    The report and plot from an earlier run are tracked, and this run rewrites them before the
    check, so they would otherwise mark every run as made from a modified tree.
    """
    commit = _first_line(["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"])
    status = subprocess.run(["git", "-C", str(REPOSITORY), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=30, check=False)
    ignored = {str(path.resolve()) for path in outputs}
    changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    changed = [name for name in changed if str((REPOSITORY / name).resolve()) not in ignored]
    return f"{commit} (with uncommitted changes in the working tree)" if changed else commit


def environment_table(outputs: Sequence[Path] = ()) -> Table:
    return Table(
        ["", ""],
        [
            ["CPU", f"{_cpu_model()}, {os.cpu_count()} cores"],
            ["memory", f"{psutil.virtual_memory().total / 2**30:.1f} GiB"],
            ["kernel", platform.release()],
            ["Python", platform.python_version()],
            ["runc", _first_line(["runc", "--version"])],
            ["conmon", _first_line(["conmon", "--version"])],
            ["SQLite", sqlite3.sqlite_version],
            ["bosun commit", _commit(outputs)],
            ["date (UTC)", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")],
        ],
    )


def _table_markdown(table: Table) -> str:
    lines = []
    if table.title:
        lines += [f"**{table.title}**", ""]
    lines.append("| " + " | ".join(table.headers) + " |")
    lines.append("| " + " | ".join("---" for _ in table.headers) + " |")
    for row in table.rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)


def write_report(
    path: Path,
    sections: Sequence[Section],
    *,
    command: str,
    smoke: bool,
    duration: float,
    plot: Path | None,
    preamble: Sequence[str] = (),
) -> None:
    parts = [
        "# bosun benchmarks",
        "",
        "Measured by `bench/` on one machine in one run. Each benchmark alternates bosun with its "
        "baseline (bare runc, `python -c pass` or raw sqlite3) call by call, and the tables give "
        "ratios next to absolute times, because this virtual machine is noisy. Benchmarks are not "
        "tests: nothing here fails a build.",
        "",
        f"Command: `{command}` ({'smoke sizes, numbers meaningless' if smoke else 'full sizes'}); "
        f"total run time {duration / 60:.1f} min.",
        "",
        _table_markdown(environment_table([path, *([plot] if plot is not None else [])])),
        "",
    ]
    for line in preamble:
        parts += [line, ""]
    for section in sections:
        parts += [f"## {section.title}", "", section.method, ""]
        for table in section.tables:
            parts += [_table_markdown(table), ""]
        for note in section.notes:
            parts += [note, ""]
        if section.name == "lifecycle" and plot is not None:
            parts += [f"![Latency of bosun run --rm and runc run]({plot.name})", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts).rstrip() + "\n")


def write_plot(path: Path, series: dict[str, list[float]]) -> bool:
    """Plot the latency distribution of each series (seconds) as an empirical CDF; False if empty."""
    series = {name: values for name, values in series.items() if values}
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, (cdf_axes, strip_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for position, (name, values) in enumerate(series.items()):
        ordered = sorted(value * 1000 for value in values)
        fractions = [(index + 1) / len(ordered) for index in range(len(ordered))]
        cdf_axes.step(ordered, fractions, where="post", label=f"{name} (n={len(ordered)})")
        strip_axes.scatter([position] * len(ordered), ordered, alpha=0.5, s=12)
    cdf_axes.set_xscale("log")
    # Plain millisecond labels on major ticks only; labelled minor ticks overlap on a log axis.
    cdf_axes.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    cdf_axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    cdf_axes.set_xlabel("wall time per run (ms, log scale)")
    cdf_axes.set_ylabel("fraction of runs")
    cdf_axes.set_title("Run to completion: empirical CDF")
    cdf_axes.legend(loc="lower right")
    cdf_axes.grid(True, which="both", alpha=0.3)
    strip_axes.set_xticks(range(len(series)), list(series))
    strip_axes.set_ylabel("wall time per run (ms)")
    strip_axes.set_title("Every run")
    strip_axes.grid(True, axis="y", alpha=0.3)
    figure.suptitle(f"bosun run --rm true vs runc run true ({platform.node()}, Python {sys.version.split()[0]})")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
