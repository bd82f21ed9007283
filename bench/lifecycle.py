"""Lifecycle: ``bosun run --rm`` against ``runc run``, and each transition against its runc call.

Three ways of doing the same transition are timed in turn, round after round, so drift on the
machine hits all three alike. The ``bosun`` CLI costs a fresh Python process plus one API
request, the in-process client costs the API request alone, and the bare ``runc`` command acts
on an equivalent container under a runc root of its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bosun.client import Client
from bench.common import (
    BareRunc,
    BosunDaemon,
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
    show_ms,
    timed,
)

TRANSITIONS = ("create", "start", "exec", "pause", "resume", "kill", "delete")
RUN_GOAL_RATIO = 2.0
OVERHEAD_GOAL = 0.005  # seconds of supervisor work per transition


def run(sizes: Sizes) -> Section:
    section = Section(
        "lifecycle",
        "Lifecycle",
        "`bosun run --rm ID BUNDLE` of `true` alternates with `runc run --bundle BUNDLE ID` of the same "
        f"busybox bundle ({sizes.lifecycle_runs} runs each; `runc run` removes its container when the "
        "process exits, so no separate `runc delete` is needed). Then, for "
        f"{sizes.transition_rounds} rounds, one container (`sleep 600`) goes through create, start, "
        "exec (`true`), pause, resume, kill (SIGKILL) and delete three ways in turn: the `bosun` CLI, "
        "the in-process client (`bosun.client.Client`, no Python start-up) and bare runc "
        "(`runc create/start/exec --detach/pause/resume/kill/delete`). After a kill, both bosun paths "
        "wait for the exit to be journaled before delete, and that wait is not timed.",
    )
    with scratch_dir("bl") as base, bosun_daemon(base / "d") as daemon:
        runc = BareRunc(base)
        try:
            _run_rm(sizes, section, daemon, runc, base)
            _transitions(sizes, section, daemon, runc, base)
        finally:
            runc.cleanup()
    _other_runtimes(section)
    return section


def _run_rm(sizes: Sizes, section: Section, daemon: BosunDaemon, runc: BareRunc, base: Path) -> None:
    bundle = busybox_bundle(base / "true", ["true"])
    bosun_times: list[float] = []
    runc_times: list[float] = []
    for index in range(sizes.lifecycle_runs):
        container_id = f"r{index}"
        argv = bosun_argv("run", "--rm", container_id, str(bundle))
        bosun_times.append(timed(lambda: run_quiet(argv, env=daemon.env)))
        runc_times.append(timed(lambda: runc.call("run", "--bundle", str(bundle), f"{container_id}x")))

    section.samples["bosun run --rm"] = bosun_times
    section.samples["runc run"] = runc_times
    ratio = median(bosun_times) / median(runc_times)
    section.tables.append(Table(
        ["command", "runs", "median ms", "p95 ms", "ratio to runc (median)", "goal", "result"],
        [
            ["bosun run --rm true", str(len(bosun_times)), ms(median(bosun_times)), ms(percentile(bosun_times, 0.95)),
             f"{ratio:.2f}", "within 2x of runc run", goal_gap(ratio, RUN_GOAL_RATIO, lower_is_better=True)],
            ["runc run true", str(len(runc_times)), ms(median(runc_times)), ms(percentile(runc_times, 0.95)),
             "1.00", "", ""],
        ],
        "Run to completion",
    ))


def _transitions(sizes: Sizes, section: Section, daemon: BosunDaemon, runc: BareRunc, base: Path) -> None:
    sleeper = busybox_bundle(base / "sleep", ["sleep", "600"])
    client = Client(daemon.socket)
    times: dict[str, dict[str, list[float]]] = {name: {"cli": [], "api": [], "runc": []} for name in TRANSITIONS}

    for round_index in range(sizes.transition_rounds):
        cli_id, api_id, runc_id = f"c{round_index}", f"a{round_index}", f"x{round_index}"

        def cli(*args: str) -> Callable[[], object]:
            return lambda: run_quiet(bosun_argv(*args), env=daemon.env)

        steps_cli = {
            "create": cli("create", cli_id, str(sleeper)),
            "start": cli("start", cli_id),
            "exec": cli("exec", cli_id, "e1", "--", "true"),
            "pause": cli("pause", cli_id),
            "resume": cli("resume", cli_id),
            "kill": cli("kill", "-s", "SIGKILL", cli_id),
            "delete": cli("delete", cli_id),
        }
        steps_api = {
            "create": lambda: client.create(api_id, str(sleeper)),
            "start": lambda: client.start(api_id),
            "exec": lambda: client.exec(api_id, "e1", ["true"]),
            "pause": lambda: client.pause(api_id),
            "resume": lambda: client.resume(api_id),
            "kill": lambda: client.kill(api_id, signal="SIGKILL"),
            "delete": lambda: client.delete(api_id),
        }
        steps_runc = {
            "create": lambda: runc.call("create", "--bundle", str(sleeper), runc_id),
            "start": lambda: runc.call("start", runc_id),
            "exec": lambda: runc.call("exec", "--detach", runc_id, "true"),
            "pause": lambda: runc.call("pause", runc_id),
            "resume": lambda: runc.call("resume", runc_id),
            "kill": lambda: runc.call("kill", runc_id, "KILL"),
            "delete": lambda: runc.call("delete", runc_id),
        }
        waits = {
            "cli": lambda: client.wait(cli_id, timeout=30),
            "api": lambda: client.wait(api_id, timeout=30),
            "runc": lambda: _wait_runc_stopped(runc, runc_id),
        }
        for name in TRANSITIONS:
            for mode, steps in (("cli", steps_cli), ("api", steps_api), ("runc", steps_runc)):
                if name == "delete":
                    waits[mode]()
                times[name][mode].append(timed(steps[name]))

    rows = []
    for name in TRANSITIONS:
        cli_median = median(times[name]["cli"])
        api_median = median(times[name]["api"])
        runc_median = median(times[name]["runc"])
        overhead = api_median - runc_median
        rows.append([
            name, ms(cli_median), ms(api_median), ms(runc_median),
            ms(cli_median - runc_median), ms(overhead),
            goal_gap(overhead, OVERHEAD_GOAL, lower_is_better=True, show=show_ms),
        ])
        for mode in ("cli", "api", "runc"):
            section.samples[f"{name} {mode}"] = times[name][mode]
    section.tables.append(Table(
        ["transition", "CLI median ms", "API median ms", "runc median ms", "CLI - runc ms",
         "supervisor overhead (API - runc) ms", "goal < 5 ms"],
        rows,
        "Per transition",
    ))
    section.notes.append(
        "CLI - API is the client's Python start-up and argument parsing. API - runc is what the daemon "
        "adds: HTTP handling, two durable journal appends (intent and outcome, each an fsync with "
        "`synchronous=FULL`), the fold and, for create and exec, conmon in front of runc."
    )


def _wait_runc_stopped(runc: BareRunc, container_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = subprocess.run(runc.argv("state", container_id), capture_output=True, text=True, timeout=30)
        if result.returncode != 0 or json.loads(result.stdout).get("status") == "stopped":
            return
        time.sleep(0.01)


def _other_runtimes(section: Section) -> None:
    rows = []
    for tool in ("ctr", "podman"):
        path = shutil.which(tool)
        if path is None:
            rows.append([tool, "skipped", f"`{tool}` is not installed on this machine"])
        else:
            rows.append([tool, "not measured", f"`{tool}` found at {path}, but this benchmark has no driver for it yet"])
    section.tables.append(Table(["tool", "status", "reason"], rows, "Comparison with containerd and podman"))
    section.notes.append(
        "Goal: `bosun run --rm true` faster than `ctr run --rm` and `podman run --rm`. That goal is "
        "unverified in this run: no comparison was measured (see the table above for why)."
    )
