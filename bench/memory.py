"""Memory and idle CPU: what each idle container costs the host."""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from bench.common import (
    BosunDaemon,
    Section,
    Sizes,
    Table,
    bosun_daemon,
    busybox_bundle,
    goal_gap,
    median,
    scratch_dir,
)
from bosun.client import Client

CPU_GOAL = 1.0  # percent of one core for the daemon with 100 idle containers

MIB = 1024 * 1024


def run(sizes: Sizes) -> Section:
    count = sizes.idle_containers
    section = Section(
        "memory",
        "Memory and idle CPU",
        f"{count} containers running `sleep 600` are started through the in-process client after "
        "one warm-up container (created, started and force-deleted, so lazily created threads and "
        "imports are in the baseline). Memory is PSS from `psutil.Process.memory_full_info()`: "
        "each conmon's own PSS, and the daemon's RSS and PSS growth from before the first to after "
        f"the last start, divided by {count}. Idle CPU is the daemon's user+system CPU time over "
        f"{sizes.idle_seconds:g} s of wall time while all of them sleep.",
    )
    with scratch_dir("bm") as base, bosun_daemon(base / "d") as daemon:
        bundle = busybox_bundle(base / "sleep", ["sleep", "600"])
        client = Client(daemon.socket)
        client.create("warmup", str(bundle), start=True)
        client.delete("warmup", force=True)
        time.sleep(0.5)

        assert daemon.process is not None
        process = psutil.Process(daemon.process.pid)
        before = process.memory_full_info()
        for index in range(count):
            client.create(f"m{index}", str(bundle), start=True)
        time.sleep(1.0)
        after = process.memory_full_info()

        conmons = _conmons(daemon)
        conmon_pss = [conmon.memory_full_info().pss for conmon in conmons]
        inits = _inits(client, count)

        cpu_before = _cpu(process)
        conmon_cpu_before = sum(_cpu(conmon) for conmon in conmons)
        time.sleep(sizes.idle_seconds)
        cpu_after = _cpu(process)
        conmon_cpu_after = sum(_cpu(conmon) for conmon in conmons)

    rss_growth = (after.rss - before.rss) / count
    pss_growth = (after.pss - before.pss) / count
    conmon_median = median(conmon_pss)
    per_container = conmon_median + max(pss_growth, 0.0)
    daemon_cpu = (cpu_after - cpu_before) / sizes.idle_seconds * 100
    conmon_cpu = (conmon_cpu_after - conmon_cpu_before) / sizes.idle_seconds * 100
    section.tables.append(Table(
        ["measure", "value", "goal", "result"],
        [
            ["conmons found", str(len(conmon_pss)), "", ""],
            ["conmon PSS per container, median (min-max)",
             f"{conmon_median / MIB:.2f} MiB ({min(conmon_pss) / MIB:.2f}-{max(conmon_pss) / MIB:.2f})", "", ""],
            ["daemon RSS growth per container", f"{rss_growth / MIB:.3f} MiB", "", ""],
            ["daemon PSS growth per container", f"{pss_growth / MIB:.3f} MiB", "", ""],
            ["per container: conmon PSS + daemon PSS growth", f"{per_container / MIB:.2f} MiB", "under 1.5 MB",
             goal_gap(per_container / 1e6, 1.5, lower_is_better=True, show=lambda v: f"{v:.2f} MB")],
            ["daemon RSS before / after", f"{before.rss / MIB:.1f} / {after.rss / MIB:.1f} MiB", "", ""],
            ["container init (`sleep`) PSS, median, not counted above", f"{median(inits) / MIB:.2f} MiB", "", ""],
            [f"daemon CPU while {count} containers idle", f"{daemon_cpu:.2f} % of one core", "under 1 %",
             goal_gap(daemon_cpu, CPU_GOAL, lower_is_better=True, show=lambda v: f"{v:.2f} points")],
            [f"all {len(conmons)} conmons' CPU while idle", f"{conmon_cpu:.2f} % of one core", "", ""],
        ],
    ))
    section.notes.append(
        "The goal of 1.5 MB is read as 1.5 x 10^6 bytes; MiB values in the table are 2^20 bytes. "
        "PSS splits shared pages (the conmon binary, libc, glib) among the processes mapping them, "
        "so it falls as more conmons run."
    )
    return section


def _conmons(daemon: BosunDaemon) -> list[psutil.Process]:
    found = []
    for pid_file in Path(daemon.root).rglob("conmon.pid"):
        text = pid_file.read_text().strip()
        if text.isdigit() and psutil.pid_exists(int(text)):
            process = psutil.Process(int(text))
            if process.name() == "conmon":
                found.append(process)
    return found


def _inits(client: Client, count: int) -> list[float]:
    sizes = []
    for index in range(count):
        pid = client.get(f"m{index}").get("pid")
        if pid and psutil.pid_exists(pid):
            sizes.append(psutil.Process(pid).memory_full_info().pss)
    return sizes


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system
