"""Concurrency: many containers started at once by parallel clients."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import (
    Section,
    Sizes,
    Table,
    bosun_argv,
    bosun_daemon,
    busybox_bundle,
    goal_gap,
    median,
    ms,
    percentile,
    run_quiet,
    scratch_dir,
)
from bosun.client import Client, ClientError

STARTS_GOAL = 100.0  # containers started per second with 10 clients


def run(sizes: Sizes) -> Section:
    count, clients = sizes.concurrent_containers, sizes.concurrent_clients
    section = Section(
        "concurrency",
        "Concurrency",
        f"{count} containers (`sleep 600`) are started by {clients} threads at once, each thread "
        f"starting {count // clients} in a row. Done twice on fresh daemons: once with each thread "
        "running the `bosun run --detach` CLI, once with each thread calling the in-process client "
        "(`create` with `start`). Starts per second is the container count over the wall time from "
        "the first request to the last reply; the latency percentiles are per start.",
    )
    rows = []
    for mode in ("cli", "client"):
        with scratch_dir("bc") as base, bosun_daemon(base / "d") as daemon:
            bundle = busybox_bundle(base / "sleep", ["sleep", "600"])
            client = Client(daemon.socket)

            def start_one(container_id: str) -> float:
                started = time.perf_counter()
                if mode == "cli":
                    run_quiet(bosun_argv("run", "--detach", container_id, str(bundle)), env=daemon.env)
                else:
                    client.create(container_id, str(bundle), start=True)
                return time.perf_counter() - started

            latencies: list[float] = []
            failures: list[str] = []
            lock = threading.Lock()

            def worker(worker_index: int) -> None:
                for item in range(count // clients):
                    try:
                        latency = start_one(f"w{worker_index}n{item}")
                    except (ClientError, RuntimeError) as exc:
                        # A failed start is a result to report, not a reason to stop the others.
                        with lock:
                            failures.append(str(exc))
                        continue
                    with lock:
                        latencies.append(latency)

            began = time.perf_counter()
            with ThreadPoolExecutor(max_workers=clients) as pool:
                for future in [pool.submit(worker, index) for index in range(clients)]:
                    future.result()
            wall = time.perf_counter() - began

            running = sum(1 for item in client.list_containers()["containers"] if item.get("state") == "running")
            throughput = len(latencies) / wall
            section.samples[f"start latency {mode}"] = latencies
            for failure in failures[:3]:
                section.notes.append(f"A failed start ({mode}): {failure}")
            rows.append([
                "bosun run --detach (CLI)" if mode == "cli" else "Client.create(start=True)",
                str(len(latencies)), str(len(failures)), str(running), f"{wall:.2f}", f"{throughput:.1f}",
                ms(median(latencies)), ms(percentile(latencies, 0.99)),
                goal_gap(throughput, STARTS_GOAL, lower_is_better=False, show=lambda v: f"{v:.1f}/s"),
            ])
    section.tables.append(Table(
        ["clients run", "started", "failed", "running after", "wall s", "starts/s", "median ms", "p99 ms",
         "goal >= 100 starts/s"],
        rows,
    ))
    section.notes.append(
        "Every start creates a conmon, which runs `runc create`, and then `runc start`; on 2 cores "
        "those processes and the daemon share the CPUs with the clients."
    )
    return section
