"""Replay: folding a large journal, with and without snapshots, and restart to first command."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from bench.common import (
    OUT_DIR,
    BosunDaemon,
    Section,
    Sizes,
    Table,
    busybox_bundle,
    goal_gap,
    import_time,
    median,
    ms,
    scratch_dir,
    show_ms,
    time_to_first_command,
)
from bench import synthetic
from bench.stopped import stopped_runc_containers
from bosun.config import DaemonSettings
from bosun.supervisor import SNAPSHOT_SCHEMA, Supervisor
from fsm.fold import fold
from journal import EventStore

REPLAY_GOAL = 100_000.0  # events folded per second without snapshots
RESTART_GOAL_LARGE = 0.2  # seconds to first command, 1000 containers and 1,000,000 events
RESTART_GOAL_SMALL = 1.0  # seconds to first command, 1000 containers and 100,000 events


def cached_journals(containers: int, events: int) -> tuple[Path, Path, int, bool]:
    """Return journals without and with snapshots (built once, kept in bench/out/), the event
    count, and whether they came from the cache."""
    builder = hashlib.sha256(Path(synthetic.__file__).read_bytes()).hexdigest()[:12]
    stem = OUT_DIR / f"journal-{containers}c-{events}e-{builder}"
    plain, snapshotted, meta = Path(f"{stem}.db"), Path(f"{stem}-snapshots.db"), Path(f"{stem}.json")
    if meta.exists() and plain.exists() and snapshotted.exists():
        return plain, snapshotted, json.loads(meta.read_text())["events"], True

    bundle = shared_bundle()
    count = synthetic.build_journal(plain, containers=containers, events=events, bundle=str(bundle))
    shutil.copyfile(plain, snapshotted)
    synthetic.add_snapshots(snapshotted)
    meta.write_text(json.dumps({"containers": containers, "events": count}) + "\n")
    return plain, snapshotted, count, False


def shared_bundle() -> Path:
    """Return the bundle the cached journals name; recovery deletes containers whose bundle is gone."""
    bundle = OUT_DIR / "bundle"
    if not (bundle / "config.json").exists():
        busybox_bundle(bundle, ["sleep", "600"])
    return bundle


def run(sizes: Sizes) -> Section:
    containers, target = sizes.replay_containers, sizes.replay_events
    section = Section(
        "replay",
        "Replay and restart",
        f"A synthetic journal of {containers} containers and about {target:,} events is written "
        "straight into SQLite with the store's hash chain. Streams are interleaved, and each "
        "container is created, started, put through pause/resume and exec cycles and exited, so "
        "every container ends stopped and listed. A copy gets the snapshots the supervisor keeps every 64 "
        "versions. Read+fold is `Supervisor.load()`, the daemon's own replay. Fold only times "
        "`fsm.fold.fold` over events already read into memory. Restart is the wall time from "
        "spawning `bosun daemon` on a copy of the journal to the first `GET /v1/version` reply. "
        "For the restarts, each container also has a stopped runc container of the same id under the "
        "daemon's runtime root (bench/stopped.py), since recovery deletes containers the runtime "
        "lacks.",
    )
    started = time.perf_counter()
    plain, snapshotted, count, cached = cached_journals(containers, target)
    built = time.perf_counter() - started
    section.notes.append(
        f"The {count:,}-event journals were {'reused from the cache in' if cached else 'built in'} "
        f"bench/out/ ({built:.1f} s{' to check' if cached else ' to write and snapshot'}); the cache is "
        "keyed by the sizes and the builder's source."
    )
    shared_bundle()

    rows = []
    for label, path in (("no snapshots", plain), ("snapshots", snapshotted)):
        read_fold, fold_only, read_only, folded = _replay_times(path)
        rows.append([
            label, f"{count:,}", f"{folded:,}", f"{read_fold:.2f}", f"{count / read_fold:,.0f}",
            f"{read_only:.2f}", f"{fold_only:.2f}", f"{folded / fold_only:,.0f}" if fold_only else "n/a",
            goal_gap(count / read_fold, REPLAY_GOAL, lower_is_better=False, show=lambda v: f"{v:,.0f} events/s")
            if label == "no snapshots" else "",
        ])
    section.tables.append(Table(
        ["journal", "events", "events folded", "read+fold s", "read+fold events/s", "read only s",
         "fold only s", "fold only events/s", "goal >= 100,000 events/s (read+fold)"],
        rows,
        "Replay",
    ))
    section.notes.append(
        "With snapshots, read+fold events/s is the journal's event count over the load time: each "
        "stream starts from its newest snapshot, so only the events after it are read and folded."
    )

    restart_rows = []
    _, small_snapshotted, small_count, _ = cached_journals(containers, sizes.restart_events)
    journals = [(small_snapshotted, small_count, RESTART_GOAL_SMALL), (snapshotted, count, RESTART_GOAL_LARGE)]
    results = _restart_times([journal for journal, _, _ in journals], containers, sizes.restart_repeats)
    for (_, events, goal), (times, recovery) in zip(journals, results):
        restart_rows.append([
            f"{containers} stopped containers, {events:,} events, snapshots", str(len(times)),
            ms(median(times)), ms(max(times)), ms(median(recovery)),
            f"under {goal:g} s", goal_gap(median(times), goal, lower_is_better=True, show=show_ms),
        ])
    section.tables.append(Table(
        ["journal", "restarts", "median ms", "max ms", "recovery (daemon's own count) median ms",
         "goal", "result"],
        restart_rows,
        "Restart to first served command",
    ))
    daemon_import = import_time("bosun.daemon")
    section.notes.append(
        f"A fresh interpreter needs {ms(daemon_import)} ms to import `bosun.daemon` (aiohttp, "
        "SQLAlchemy, the fold) before any replay. Recovery, as the daemon journals it in "
        "`RecoveryFinished`, covers replay and the reconcile pass. For stopped containers with "
        "nothing pending, the reconcile pass checks them against one `runc list` of the runtime "
        "root instead of calling `runc state` for each."
    )
    return section


def _settings(path: Path) -> DaemonSettings:
    return DaemonSettings(root=Path("/nonexistent-bench-root"), journal_url=f"sqlite:///{path}", socket=Path("/nonexistent.sock"))


def _replay_times(path: Path) -> tuple[float, float, float, int]:
    """Return read+fold seconds, fold-only seconds, read-only seconds and events folded."""
    store = EventStore.open(f"sqlite:///{path}", migrate_schema=False)
    try:
        supervisor = Supervisor(store, runtime=None, shim=None, settings=_settings(path))  # type: ignore[arg-type]
        began = time.perf_counter()
        supervisor.load()
        read_fold = time.perf_counter() - began

        began = time.perf_counter()
        snapshots = store.load_snapshots(schema=SNAPSHOT_SCHEMA)
        streams = {}
        for stream in store.stream_versions("container/"):
            snapshot = snapshots.get(stream)
            after = snapshot.version if snapshot is not None else 0
            streams[stream] = (snapshot, store.read_stream(stream, after_version=after))
        read_only = time.perf_counter() - began

        folded = 0
        began = time.perf_counter()
        for stream, (snapshot, records) in streams.items():
            fold(stream.partition("/")[2], records, snapshot=snapshot.state if snapshot else None)
            folded += len(records)
        fold_only = time.perf_counter() - began
    finally:
        store.close()
    return read_fold, fold_only, read_only, folded


def _restart_times(journals: list[Path], containers: int, repeats: int) -> list[tuple[list[float], list[float]]]:
    """Restart a daemon ``repeats`` times on a copy of each journal in turn.

    Returns, per journal, the seconds to the first reply and the recovery seconds the daemon
    reported. Every cached journal contains the same stopped containers (``c00000`` on), so one set
    of stopped runc containers under one runtime root serves them all; runc's state is not in the
    cache, so the set is created on every run.
    """
    ids = [synthetic.container_id(index) for index in range(containers)]
    results: list[tuple[list[float], list[float]]] = []
    with scratch_dir("br") as base:
        daemon = BosunDaemon(base)
        try:
            with stopped_runc_containers(daemon.root / "runtime", ids, shared_bundle(), base / "runc-bundles"):
                for number, journal in enumerate(journals):
                    copy = base / f"journal-{number}.db"
                    shutil.copyfile(journal, copy)
                    daemon.journal = f"sqlite:///{copy}"
                    results.append(_restart_repeatedly(daemon, repeats))
        finally:
            daemon.stop()
            daemon.cleanup()
    return results


def _restart_repeatedly(daemon: BosunDaemon, repeats: int) -> tuple[list[float], list[float]]:
    times: list[float] = []
    recovery: list[float] = []
    for _ in range(repeats):
        try:
            seconds, reply = time_to_first_command(daemon)
        finally:
            daemon.stop()
        report = reply.get("recovery", {})
        missing = report.get("counts", {}).get("runtime_container_missing", 0)
        if missing:
            msg = f"recovery deleted {missing} synthetic containers that runc should have had"
            raise RuntimeError(msg)
        times.append(seconds)
        recovery.append(float(report.get("duration_seconds", float("nan"))))
    return times, recovery
