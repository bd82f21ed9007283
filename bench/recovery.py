"""Recovery: restart after SIGKILL with running containers, some of which exited meanwhile."""

from __future__ import annotations

import json
import subprocess

from bench.common import (
    CALL_LIMIT,
    Section,
    Sizes,
    Table,
    bosun_daemon,
    busybox_bundle,
    ms,
    scratch_dir,
    time_to_first_command,
    wait_until,
)
from bosun.client import Client


def run(sizes: Sizes) -> Section:
    count, exited = sizes.recovery_containers, sizes.recovery_exited
    section = Section(
        "recovery",
        "Recovery after a crash",
        f"{count} containers running `sleep 600` are started, then the daemon is killed with "
        f"SIGKILL. While it is down, {exited} of them get SIGKILL through `runc kill` (bosun's "
        "runtime root), and the benchmark waits until runc reports them stopped. The clock then "
        "runs from spawning the daemon to the first `GET /v1/version` reply; the API opens only "
        "after recovery finished.",
    )
    with scratch_dir("bk") as base, bosun_daemon(base / "d") as daemon:
        bundle = busybox_bundle(base / "sleep", ["sleep", "600"])
        client = Client(daemon.socket)
        ids = [f"k{index}" for index in range(count)]
        for container_id in ids:
            client.create(container_id, str(bundle), start=True)

        daemon.kill()
        runtime_root = str(daemon.root / "runtime")
        victims = ids[:exited]
        for container_id in victims:
            subprocess.run(["runc", "--root", runtime_root, "kill", container_id, "KILL"],
                           check=True, capture_output=True, timeout=CALL_LIMIT)

        def all_stopped() -> bool:
            return all(_runc_status(runtime_root, container_id) == "stopped" for container_id in victims)

        if not wait_until(all_stopped, timeout=30):
            raise RuntimeError("the killed containers did not stop within 30 s")

        seconds, reply = time_to_first_command(daemon)
        recovery = reply.get("recovery", {})
        states = {item["id"]: item for item in client.list_containers()["containers"]}

    stopped = [cid for cid in victims if states.get(cid, {}).get("state") == "stopped"]
    statuses = sorted({states[cid].get("exit_status") for cid in stopped})
    running = sum(1 for cid in ids[exited:] if states.get(cid, {}).get("state") == "running")
    counts = recovery.get("counts", {})
    section.tables.append(Table(
        ["measure", "value"],
        [
            ["restart to first served command", f"{ms(seconds)} ms"],
            ["recovery as journaled by the daemon", f"{ms(float(recovery.get('duration_seconds', float('nan'))))} ms"],
            ["containers killed while down, found stopped", f"{len(stopped)} of {exited} (exit status {statuses})"],
            ["other containers still running", f"{running} of {count - exited}"],
            ["recovery counts", "`" + json.dumps(counts, sort_keys=True) + "`"],
        ],
    ))
    section.notes.append("There is no numeric goal for this group; it shows what a crash costs at start-up.")
    return section


def _runc_status(root: str, container_id: str) -> str | None:
    result = subprocess.run(["runc", "--root", root, "state", container_id], capture_output=True, text=True,
                            timeout=CALL_LIMIT)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout).get("status")


