"""CLI: ``bosun ps`` and ``bosun info`` against a journal of many containers."""

from __future__ import annotations

import sys

from bench import synthetic
from bench.common import (
    BosunDaemon,
    Section,
    Sizes,
    Table,
    bosun_argv,
    busybox_bundle,
    goal_gap,
    median,
    ms,
    percentile,
    run_quiet,
    scratch_dir,
    show_ms,
    timed,
)
from bench.stopped import stopped_runc_containers
from bosun.client import Client

PS_GOAL = 0.060  # seconds for `bosun ps` with 1000 containers


def run(sizes: Sizes) -> Section:
    count = sizes.listed_containers
    section = Section(
        "cli",
        "CLI with many containers",
        f"A journal of {count} containers is written directly (bench/synthetic.py): three in four "
        "were created, started and exited, one in four was created and exited before it was "
        "started, so all are stopped and `bosun ps` lists every one. Each has a stopped runc "
        "container of the same id under the daemon's runtime root (created, then killed before "
        "it was started; bench/stopped.py), since recovery deletes containers the runtime lacks. "
        "A daemon is started on it; then `bosun ps`, `bosun info ID`, their API requests through "
        f"the in-process client, and `python -c pass` take turns, {sizes.cli_repeats} times each.",
    )
    with scratch_dir("bp") as base:
        bundle = busybox_bundle(base / "bundle", ["sleep", "600"])
        events = synthetic.build_journal(
            base / "journal.db", containers=count, events=count * 5, bundle=str(bundle), never_started_every=4,
        )
        daemon = BosunDaemon(base)
        ids = [synthetic.container_id(index) for index in range(count)]
        try:
            with stopped_runc_containers(daemon.root / "runtime", ids, bundle, base / "runc-bundles"):
                try:
                    times, listed = _measure(sizes, daemon)
                finally:
                    daemon.stop()
        finally:
            daemon.cleanup()

    baseline = median(times["python -c pass"])
    rows = []
    for name, values in times.items():
        goal = ""
        if name == "bosun ps":
            goal = f"under 60 ms: {goal_gap(median(values), PS_GOAL, lower_is_better=True, show=show_ms)}"
        rows.append([name, ms(median(values)), ms(percentile(values, 0.95)), f"{median(values) / baseline:.2f}", goal])
        section.samples[name] = values
    section.tables.append(Table(["command", "median ms", "p95 ms", "ratio to python -c pass", "goal"], rows))
    section.notes.append(f"The journal held {events:,} events; `bosun ps` listed {listed} containers.")
    return section


def _measure(sizes: Sizes, daemon: BosunDaemon) -> tuple[dict[str, list[float]], int]:
    """Start ``daemon`` and time each command in turn; return the times and the listed count."""
    daemon.start()
    client = Client(daemon.socket)
    missing = client.version().get("recovery", {}).get("counts", {}).get("runtime_container_missing", 0)
    if missing:
        msg = f"recovery deleted {missing} synthetic containers that runc should have had"
        raise RuntimeError(msg)
    listed = len(client.list_containers()["containers"])
    target = synthetic.container_id(sizes.listed_containers // 2)
    measures = {
        "bosun ps": lambda: run_quiet(bosun_argv("ps"), env=daemon.env),
        "bosun info ID": lambda: run_quiet(bosun_argv("info", target), env=daemon.env),
        "GET /v1/containers (client)": client.list_containers,
        "GET /v1/containers/ID (client)": lambda: client.get(target),
        "python -c pass": lambda: run_quiet([sys.executable, "-c", "pass"]),
    }
    times: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(sizes.cli_repeats):
        for name, action in measures.items():
            times[name].append(timed(action))
    return times, listed
