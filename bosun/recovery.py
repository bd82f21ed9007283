"""Reconciliation of the journal's belief with the live system, at daemon start and for audits.

For each container that is not deleted, ``Reconciler.inspect`` compares the journal's state
with what the runtime, the shims and the kernel show, and returns the differences as findings.
Recovery resolves each finding by appending events that say why; an audit only reports them.

Order matters: open intents first (they decide what the runtime's state means), then process
exits (an exit file is the best evidence there is), then the container's runtime status.

Policy for a process whose shim is gone while the process still runs and is still ours
(``orphan_policy``): ``kill`` (the default) sends SIGKILL through a pidfd and journals the exit
as 137 with the reason, because a process nobody monitors would exit unrecorded. No other
policy is implemented; ``adopt`` is rejected at start.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters.base import AdapterError, ContainerNotFound, ExitInfo, ProcessRef, RuntimeState
from bosun.supervisor import Supervisor, exit_event, new_command_id
from fsm import events as ev
from fsm.fold import ContainerState, PendingIntent
from fsm.machines import INIT_PROCESS
from fsm.rules import Command, ContainerStatus, ProcessStatus
from fsm.streams import container_stream

logger = logging.getLogger(__name__)

# Seconds to wait for an exit file after the runtime reports a container stopped, since conmon
# writes it a moment after the process ends.
EXIT_FILE_GRACE = 2.0

RECOVERY_WHO = {"recovery": True}


@dataclasses.dataclass
class Finding:
    """One difference between belief and reality, with the events that resolve it."""

    kind: str
    detail: str
    process: str | None = None
    events: list[ev.Event] = dataclasses.field(default_factory=list)
    command_id: str | None = None
    # A side effect recovery performs before journaling ``events`` (never run by an audit).
    action: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "process": self.process, "detail": self.detail}


class Reconciler:
    """Compares and reconciles containers; shared by recovery and ``bosun audit``."""

    def __init__(self, supervisor: Supervisor, *, orphan_policy: str = "kill") -> None:
        self.supervisor = supervisor
        self.runtime = supervisor.runtime
        self.shim = supervisor.shim
        self.orphan_policy = orphan_policy
        # Runtime containers by id, listed once by recovery; None makes every check live.
        self.listing: dict[str, RuntimeState] | None = None

    def runtime_state(self, container_id: str) -> RuntimeState | None:
        try:
            return self.runtime.state(container_id)
        except ContainerNotFound:
            return None

    # -- inspection -------------------------------------------------------------------------

    def inspect(self, state: ContainerState, *, skip_processes: frozenset[str] = frozenset()) -> list[Finding]:
        """Return every difference between ``state`` and the live system; change nothing."""
        findings: list[Finding] = []
        live_processes = [
            process_id for process_id, process in state.processes.items()
            if process.status != ProcessStatus.EXITED and process.ref and process_id not in skip_processes
        ]
        if any(intent.command == Command.START_CHECKPOINT for intent in state.pending.values()):
            # The open restore's resolution journals the old init's exit itself, and a finding
            # about "init" resolved after it would land on the restored init instead.
            live_processes = [process_id for process_id in live_processes if process_id != INIT_PROCESS]
        # One ``runtime list`` at recovery start reports the status of every container the same
        # way ``runtime state`` does, so a restart does not run the runtime once per container.
        # An open intent is resolved from a fresh ``runtime state``, because whether its command
        # took effect may have been decided by the runtime moments ago.
        if state.pending or self.listing is None:
            runtime_state = self.runtime_state(state.id)
        else:
            runtime_state = self.listing.get(state.id)

        if state.bundle and not Path(state.bundle).is_dir():
            findings.append(Finding(
                "bundle_missing",
                f"bundle directory {state.bundle} is missing",
                action="delete_runtime_container",
            ))
            return findings

        for intent in sorted(state.pending.values(), key=lambda pending: pending.seq):
            findings.append(self._resolve_intent(state, intent, runtime_state))

        for process_id in live_processes:
            process = state.processes[process_id]
            finding = self._inspect_process(state, process_id, ProcessRef.from_data(process.ref or {}), runtime_state)
            if finding is not None:
                findings.append(finding)

        finding = self._inspect_status(state, runtime_state)
        if finding is not None:
            findings.append(finding)
        return findings

    def _resolve_intent(
        self, state: ContainerState, intent: PendingIntent, runtime_state: RuntimeState | None
    ) -> Finding:
        status = runtime_state.status if runtime_state is not None else "missing"
        detail_prefix = f"{intent.type} (seq {intent.seq}) has no outcome; runtime reports {status}"

        def resolved(kind: str, events: list[ev.Event], detail: str, action: str | None = None) -> Finding:
            return Finding(kind, f"{detail_prefix}: {detail}", events=events,
                           command_id=intent.command_id, action=action)

        interrupted = "interrupted: the daemon stopped before the command finished"
        match intent.type:
            case "CreateRequested":
                state_dir = self.supervisor.settings.containers_dir / state.id
                ref = self._locate_new(state, INIT_PROCESS, state_dir) if runtime_state is not None else None
                if ref is not None:
                    return resolved("open_intent", [ev.Created(init=ref.to_data(), state_dir=str(state_dir))],
                                    f"the create happened; its shim (pid {ref.shim_pid}) was found from its files",
                                    action="watch_located")
                if runtime_state is not None:
                    return resolved("open_intent", [ev.CreateFailed(reason=f"{interrupted}; the half-created runtime container was removed", source="recovery")],
                                    "the create's shim is unknown, so the runtime container is removed", action="delete_runtime_container")
                return resolved("open_intent", [ev.CreateFailed(reason=interrupted, source="recovery")], "the create did not happen",
                                action="delete_runtime_container")
            case "StartRequested" if intent.data.get("checkpoint"):
                checkpoint = str(intent.data["checkpoint"])
                ref = self._locate_new(state, INIT_PROCESS, Path(state.state_dir)) if state.state_dir else None
                if ref is not None:
                    started = ev.Started(restored_from=checkpoint, init=ref.to_data())
                    return resolved("open_intent", [*self._replaced_init_exit(state), started],
                                    f"the restore happened; its shim (pid {ref.shim_pid}) was found from its files",
                                    action="watch_located")
                if status in ("running", "paused"):
                    return resolved("open_intent", [ev.StartFailed(reason=f"{interrupted}; the restored container's shim is unknown, so the runtime container was removed", source="recovery")],
                                    "the restored container runs without a known shim, so it is removed",
                                    action="remove_runtime_container")
                return resolved("open_intent", [ev.StartFailed(reason=interrupted, source="recovery")], "the restore did not happen")
            case "StartRequested":
                if status in ("running", "paused", "stopped"):
                    return resolved("open_intent", [ev.Started()], "the start happened")
                return resolved("open_intent", [ev.StartFailed(reason=interrupted, source="recovery")], "the start did not happen")
            case "PauseRequested":
                if status == "paused":
                    return resolved("open_intent", [ev.Paused()], "the pause happened")
                return resolved("open_intent", [ev.PauseFailed(reason=interrupted, source="recovery")], "the pause did not happen")
            case "ResumeRequested":
                if status == "running" and state.status == ContainerStatus.PAUSED:
                    return resolved("open_intent", [ev.Resumed()], "the resume happened")
                return resolved("open_intent", [ev.ResumeFailed(reason=interrupted, source="recovery")], "the resume did not happen")
            case "KillRequested":
                return resolved("open_intent", [ev.KillFailed(reason=f"{interrupted}; whether the signal was delivered is unknown", source="recovery")],
                                "signal delivery cannot be observed afterwards")
            case "ExecRequested":
                exec_id = str(intent.data.get("process", ""))
                exec_dir = Path(state.state_dir or "/nonexistent") / "exec" / exec_id
                ref = self._locate_new(state, exec_id, exec_dir) if exec_id and state.state_dir else None
                if ref is not None:
                    return resolved("open_intent", [ev.ExecStarted(process=exec_id, ref=ref.to_data())],
                                    f"the exec happened; its shim (pid {ref.shim_pid}) was found from its files",
                                    action="watch_located")
                return resolved("open_intent", [ev.ExecFailed(reason=f"{interrupted}; the exec's shim is unknown", source="recovery")],
                                "the exec's process cannot be found without its shim record")
            case "UpdateRequested":
                if status in ("created", "running", "paused"):
                    return resolved("open_intent", [ev.Updated(resources=intent.data.get("resources", {}))],
                                    "the resources are applied again, which is idempotent", action="reapply_update")
                return resolved("open_intent", [ev.UpdateFailed(reason=interrupted, source="recovery")], "the container is gone")
            case "CheckpointRequested":
                name = intent.data.get("name", "")
                image = Path(state.state_dir or "/nonexistent") / "checkpoints" / name
                if (image / "inventory.img").exists():
                    return resolved("open_intent", [ev.CheckpointCreated(name=name, path=str(image), leave_running=bool(intent.data.get("leave_running")))],
                                    "the checkpoint image is complete")
                return resolved("open_intent", [ev.CheckpointFailed(reason=interrupted, source="recovery")],
                                "no complete checkpoint image", action="remove_partial_checkpoint")
            case "CheckpointDeleteRequested":
                name = intent.data.get("name", "")
                return resolved("open_intent", [ev.CheckpointDeleted(name=name)], "the delete is completed", action="finish_checkpoint_delete")
            case "DeleteRequested":
                if runtime_state is None or status == "stopped" or intent.data.get("force"):
                    return resolved("open_intent", [], "the delete is completed", action="finish_delete")
                return resolved("open_intent", [ev.DeleteFailed(reason=interrupted, source="recovery")], "the container is still live")
        return resolved("open_intent", [], "unknown intent type; left open")

    def _locate_new(self, state: ContainerState, process_id: str, state_dir: Path) -> ProcessRef | None:
        """Return the process that the shim's files in ``state_dir`` name, unless the journal has it.

        A re-created container, a reused exec id or a restore starts in a directory that may
        still hold the files of an earlier process whose exit is journaled. That process is
        not the one the interrupted command started.
        """
        ref = self.shim.locate(state.id, process_id, state_dir)
        if ref is None:
            return None
        for record in self.supervisor.store.read_stream(container_stream(state.id)):
            for key in ("init", "ref"):
                known = record.data.get(key)
                if isinstance(known, dict) and (known.get("shim_pid"), known.get("pid")) == (ref.shim_pid, ref.pid):
                    logger.info("container %s: the files in %s name process %s of seq %s, which the journal has",
                                state.id, state_dir, process_id, record.seq)
                    return None
        return ref

    def _replaced_init_exit(self, state: ContainerState) -> list[ev.Event]:
        """Return the exit of the init that an interrupted restore replaced, if it was believed alive."""
        init = state.processes.get(INIT_PROCESS)
        if init is None or init.status == ProcessStatus.EXITED or not init.ref:
            return []
        info = self.shim.read_exit(ProcessRef.from_data(init.ref))
        if info is None or info.status_lost:
            # The restored process's shim writes its exit file at the same path, so the old
            # one's status is gone by now.
            reason = "exit status lost: a restore replaced this init process and its exit file"
            info = ExitInfo(status=255, status_lost=True, reason=reason)
        return [exit_event(INIT_PROCESS, info, source="recovery")]

    def _inspect_process(
        self, state: ContainerState, process_id: str, ref: ProcessRef, runtime_state: RuntimeState | None
    ) -> Finding | None:
        info = self.shim.read_exit(ref)
        if info is not None and not info.status_lost:
            return Finding(
                "exited_while_down",
                f"process {process_id} exited with status {info.status} and the exit file says so",
                process=process_id,
                events=[exit_event(process_id, info, source="recovery")],
            )
        if self.shim.shim_alive(ref):
            return Finding("shim_alive", f"shim {ref.shim_pid} of process {process_id} is alive; watching it again",
                           process=process_id, events=[ev.ShimReattached(process=process_id, shim_pid=ref.shim_pid)],
                           action="watch")

        # The shim is gone and wrote no status.
        if self.shim.process_alive(ref):
            return Finding(
                "orphan_process",
                f"shim {ref.shim_pid} of process {process_id} is gone but pid {ref.pid} still runs; policy {self.orphan_policy}",
                process=process_id,
                action="kill_orphan",
            )
        if self.shim.pid_reused(ref):
            reason = f"exit status lost: pid {ref.pid} now belongs to another process (start time differs); it was not signalled"
        else:
            reason = f"exit status lost: shim {ref.shim_pid} and process {ref.pid} are gone with no exit file"
        return Finding("exit_status_lost", reason, process=process_id,
                       events=[exit_event(process_id, ExitInfo(status=255, status_lost=True, reason=reason), source="recovery")])

    def _inspect_status(self, state: ContainerState, runtime_state: RuntimeState | None) -> Finding | None:
        if runtime_state is None and state.status not in (ContainerStatus.NEW, ContainerStatus.DELETED):
            # Resolved after the process findings journal the exits, so the container has
            # stopped by then and its deletion can be journaled.
            return Finding("runtime_container_missing",
                           f"the runtime has no container {state.id} while the journal says {state.status.value}")
        if state.status not in (ContainerStatus.RUNNING, ContainerStatus.PAUSED):
            return None
        if runtime_state is None:
            return None
        if state.status == ContainerStatus.RUNNING and runtime_state.status == "paused":
            return Finding("paused_behind_back", "runtime reports paused while the journal says running",
                           events=[ev.StateReconciled(from_state="running", to_state="paused",
                                                      reason="the runtime reports the container paused; it was paused outside bosun")])
        if state.status == ContainerStatus.PAUSED and runtime_state.status == "running":
            return Finding("resumed_behind_back", "runtime reports running while the journal says paused",
                           events=[ev.StateReconciled(from_state="paused", to_state="running",
                                                      reason="the runtime reports the container running; it was resumed outside bosun")])
        return None

    # -- reconciliation ---------------------------------------------------------------------

    def reconcile(self, container_id: str) -> list[Finding]:
        """Resolve every finding of one container, journaling each; return what was done."""
        with self.supervisor.locked(container_id):
            state = self.supervisor._states[container_id]
            done: list[Finding] = []
            handled: set[str] = set()
            # Resolving an intent can add a process (a create or exec found from the shim's
            # files), which the next pass then checks; the passes end when no intent was open.
            for _ in range(3):
                findings = self.inspect(state, skip_processes=frozenset(handled))
                for finding in findings:
                    self._resolve(state, finding)
                    if finding.process is not None:
                        handled.add(finding.process)
                done.extend(findings)
                handled.update(p for p, process in state.processes.items() if process.status == ProcessStatus.EXITED)
                if not any(finding.kind == "open_intent" for finding in findings):
                    break
            return done

    def _resolve(self, state: ContainerState, finding: Finding) -> None:
        command_id = finding.command_id
        events = list(finding.events)

        if finding.process is not None:
            process = state.processes.get(finding.process)
            if process is None or process.status == ProcessStatus.EXITED:
                # An intent resolved just before (an interrupted delete completed) already
                # journaled this process's exit; the finding predates that.
                return
        reconciled = events[0] if events and isinstance(events[0], ev.StateReconciled) else None
        if reconciled is not None and state.status.value != reconciled.from_state:
            # The interrupted pause or resume was just journaled as done, which is the change
            # this finding saw; nothing happened behind bosun's back.
            return

        if finding.kind == "runtime_container_missing":
            # An open delete resolved just before may already have journaled the deletion.
            if state.status not in (ContainerStatus.NEW, ContainerStatus.DELETED):
                self._delete_for_missing_bundle(state, finding)
            return
        if finding.action == "delete_runtime_container" and finding.kind == "bundle_missing":
            self._delete_for_missing_bundle(state, finding)
            return
        if finding.action in ("delete_runtime_container", "remove_runtime_container") and self.listing is not None:
            # The next pass must not find the container in the listing taken before.
            self.listing.pop(state.id, None)
        if finding.action == "delete_runtime_container":
            self._remove_runtime_container(state.id)
            shutil.rmtree(self.supervisor.settings.containers_dir / state.id, ignore_errors=True)
        elif finding.action == "remove_runtime_container":
            self._remove_runtime_container(state.id)
        elif finding.action == "watch_located":
            # Journal first so the process exists in the state, then watch it; the next pass
            # checks whether it already exited.
            self.supervisor.append(state, events, command_id)
            logger.info("container %s: %s", state.id, finding.detail)
            return
        elif finding.action == "watch":
            ref = ProcessRef.from_data(state.processes[finding.process or "init"].ref or {})
            self.shim.watch(ref, self.supervisor._on_process_exit)
        elif finding.action == "kill_orphan":
            ref = ProcessRef.from_data(state.processes[finding.process or "init"].ref or {})
            # The supervisor's orphan path journals ShimLost and, once the process is gone, 137.
            self.supervisor.handle_orphan(ref, source="recovery")
        elif finding.action == "reapply_update":
            try:
                self.runtime.update(state.id, events[0].resources)  # type: ignore[attr-defined]
            except AdapterError as exc:
                events = [ev.UpdateFailed(reason=f"interrupted, and applying the resources again failed: {exc}", source="recovery")]
        elif finding.action == "remove_partial_checkpoint":
            name = state.pending[command_id].data.get("name", "") if command_id in state.pending else ""
            if name and state.state_dir:
                shutil.rmtree(Path(state.state_dir) / "checkpoints" / name, ignore_errors=True)
        elif finding.action == "finish_checkpoint_delete":
            name = events[0].name  # type: ignore[attr-defined]
            path = state.checkpoints.get(name, {}).get("path")
            if path:
                shutil.rmtree(path, ignore_errors=True)
        elif finding.action == "finish_delete":
            events = self._finish_delete(state)

        if events:
            self.supervisor.append(state, events, command_id)
        if finding.action == "finish_delete" and state.state_dir:
            # After the journal has the exits, as in a live delete.
            shutil.rmtree(state.state_dir, ignore_errors=True)
        logger.info("container %s: %s", state.id, finding.detail)

    def _remove_runtime_container(self, container_id: str) -> None:
        try:
            self.runtime.delete(container_id, force=True)
        except ContainerNotFound:
            pass

    def _finish_delete(self, state: ContainerState) -> list[ev.Event]:
        self._remove_runtime_container(state.id)
        facts = self.supervisor.collect_exits(state, EXIT_FILE_GRACE, source="recovery")
        return [*facts, ev.Deleted(reason="delete completed by recovery after an interruption")]

    def _delete_for_missing_bundle(self, state: ContainerState, finding: Finding) -> None:
        self._remove_runtime_container(state.id)
        command_id = new_command_id()
        # Close any open intents first, so the delete is not journaled under a pending one.
        for intent in list(state.pending.values()):
            _, failure = ev.outcome_types_for(intent.command)
            self.supervisor.append(state, [failure(reason="interrupted; the bundle is missing", source="recovery")], intent.command_id)
        self.supervisor.append(state, [ev.DeleteRequested(force=True, requested_by=RECOVERY_WHO)], command_id)
        facts = self.supervisor.collect_exits(state, EXIT_FILE_GRACE, source="recovery")
        self.supervisor.append(state, [*facts, ev.Deleted(reason=finding.detail)], command_id)
        if state.state_dir:
            shutil.rmtree(state.state_dir, ignore_errors=True)


def unknown_runtime_containers(supervisor: Supervisor) -> list[RuntimeState]:
    """Return runtime containers under bosun's runtime root that the journal never heard of."""
    try:
        listed = supervisor.runtime.list()
    except AdapterError as exc:
        logger.warning("listing runtime containers failed: %s", exc)
        return []
    known = {view["id"] for view in supervisor.views()}
    return [item for item in listed if item.id not in known]


def count_kinds(findings: Sequence[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.kind] = counts.get(finding.kind, 0) + 1
    return counts
