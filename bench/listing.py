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
from bosun.client import Client

PS_GOAL = 0.060  # seconds for `bosun ps` with 1000 containers


def run(sizes: Sizes) -> Section:
    count = sizes.listed_containers
    section = Section(
        "cli",
        "CLI with many containers",
        f"A journal of {count} containers is written directly (bench/synthetic.py): three in four "
        "were created, started and exited, one in four was created and exited before it was "
        "started, so all are stopped and `bosun ps` lists every one. A daemon is started on it; "
        f"then `bosun ps`, `bosun info ID`, their API requests through the in-process client, and "
        f"`python -c pass` take turns, {sizes.cli_repeats} times each.",
    )
    with scratch_dir("bp") as base:
        bundle = busybox_bundle(base / "bundle", ["sleep", "600"])
        events = synthetic.build_journal(
            base / "journal.db", containers=count, events=count * 5, bundle=str(bundle), never_started_every=4,
        )
        daemon = BosunDaemon(base)
        try:
            daemon.start()
            client = Client(daemon.socket)
            listed = len(client.list_containers()["containers"])
            target = synthetic.container_id(count // 2)
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
        finally:
            daemon.stop()
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
