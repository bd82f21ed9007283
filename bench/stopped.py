"""Stopped runc containers behind the stopped containers of a synthetic journal.

At start, recovery lists bosun's runtime root once and journals every container that the
journal believes created, running, paused or stopped, but that runc does not have, as deleted
(``runtime_container_missing``). A daemon started on a journal from ``bench.synthetic`` therefore
needs a runc container of the same id for each of its stopped containers. A stopped one is
cheap: ``runc create`` leaves ``runc init`` waiting on its exec FIFO, SIGKILL ends it, and only
runc's state directory and an empty cgroup remain until ``runc delete``. No conmon is involved.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import CALL_LIMIT, run_quiet

# runc calls in flight at once. Each call spends part of its time waiting on its child process,
# so a few overlap well: 1000 containers took 27 s to create and stop, and 5 s to delete, on the
# 2-core VM of docs/benchmarks.md.
WORKERS = 4


@contextlib.contextmanager
def stopped_runc_containers(runtime_root: Path, ids: Sequence[str], bundle: Path, scratch: Path) -> Iterator[None]:
    """Create a stopped runc container for each of ``ids`` under ``runtime_root``; delete them on exit.

    ``bundle`` is a busybox bundle whose ``config.json`` and rootfs every container shares. Each
    container gets a copy of that ``config.json`` under ``scratch`` with a ``linux.cgroupsPath``
    unique to this call. Without one, runc names the cgroup after the container id, and the
    synthetic ids (``c00000`` and on) are the same in every run, so a leftover or a concurrent
    smoke run would share cgroups. The runc bundle path therefore differs from the journal's
    ``bundle``, which recovery only checks for existence.
    """
    configs = _write_configs(ids, bundle, scratch)
    created: list[str] = []

    def create(container_id: str) -> None:
        run_quiet(_runc(runtime_root, "create", "--bundle", str(configs[container_id]), container_id))
        created.append(container_id)

    def kill(container_id: str) -> None:
        run_quiet(_runc(runtime_root, "kill", container_id, "KILL"))

    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(create, ids))
            list(pool.map(kill, ids))
        _wait_stopped(runtime_root, ids)
        yield
    finally:
        delete_runc_containers(runtime_root, created)


def delete_runc_containers(runtime_root: Path, ids: Sequence[str]) -> None:
    """Run ``runc delete --force`` on each of ``ids``, a few at a time, ignoring ids runc does not have."""

    def delete(container_id: str) -> None:
        subprocess.run(_runc(runtime_root, "delete", "--force", container_id),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=CALL_LIMIT, check=False)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(delete, ids))


def _write_configs(ids: Sequence[str], bundle: Path, scratch: Path) -> dict[str, Path]:
    template = json.loads((bundle / "config.json").read_text())
    rootfs = Path(template["root"]["path"])
    template["root"]["path"] = str(rootfs if rootfs.is_absolute() else bundle.absolute() / rootfs)
    token = uuid.uuid4().hex[:8]
    configs = {}
    for container_id in ids:
        directory = scratch / container_id
        directory.mkdir(parents=True, exist_ok=True)
        template["linux"]["cgroupsPath"] = f"bosun-bench-{token}-{container_id}"
        (directory / "config.json").write_text(json.dumps(template))
        configs[container_id] = directory
    return configs


def _wait_stopped(runtime_root: Path, ids: Sequence[str], timeout: float = CALL_LIMIT) -> None:
    """Poll ``runc list`` until every one of ``ids`` is stopped, one listing per poll for all of them."""
    expected = set(ids)
    deadline = time.monotonic() + timeout
    while True:
        output = run_quiet(_runc(runtime_root, "list", "--format", "json"), capture=True).stdout
        listed = json.loads(output) or []
        pending = expected - {item["id"] for item in listed if item["status"] == "stopped"}
        if not pending:
            return
        if time.monotonic() > deadline:
            msg = (f"timed out after {timeout:g} s waiting for {len(pending)} runc containers under "
                   f"{runtime_root} to stop after SIGKILL, for example {sorted(pending)[0]}")
            raise RuntimeError(msg)
        time.sleep(0.02)


def _runc(runtime_root: Path, *args: str) -> list[str]:
    return ["runc", "--root", str(runtime_root), *args]
