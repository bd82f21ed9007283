"""Failing histories the lifecycle machine found, kept as plain tests with the steps inlined.

Each test replays the steps hypothesis printed, on the simulated runtime; the machine checks
its properties after each step as hypothesis did. The comment above each test names what
the history caught.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bosun.conformance import Fault, SimulatedBackend, lifecycle_machine

Machine = lifecycle_machine(SimulatedBackend)


@pytest.fixture
def state() -> Iterator[Any]:
    machine = Machine()
    machine.journal_is_the_truth()
    yield machine
    machine.teardown()


# Caught recovery journaling ShimReattached after it had completed an interrupted delete.
def test_crash_after_force_delete_intent_recovers_without_anomaly(state: Any) -> None:
    state.create(choice=0, fault=None, start=False)
    state.journal_is_the_truth()
    state.delete(choice=2, fault=Fault("crash-point", "delete:after-intent"), force=True)
    state.journal_is_the_truth()


# Caught recovery journaling both Resumed and StateReconciled for one interrupted resume.
def test_crash_after_resume_runtime_call_reconciles_once(state: Any) -> None:
    state.populate(initial=["running", "absent", "absent"])
    state.journal_is_the_truth()
    state.pause(choice=0, fault=None)
    state.journal_is_the_truth()
    state.resume(choice=0, fault=Fault("crash-point", "resume:after-runtime"))
    state.journal_is_the_truth()


# Caught recovery journaling both Paused and StateReconciled for one interrupted pause.
def test_crash_after_pause_runtime_call_reconciles_once(state: Any) -> None:
    state.populate(initial=["running", "absent", "absent"])
    state.journal_is_the_truth()
    state.pause(choice=0, fault=Fault("crash-point", "pause:after-runtime"))
    state.journal_is_the_truth()


# Caught recovery leaving a container stopped in the journal after its runtime container was
# removed by a delete that then failed.
def test_vanished_runtime_container_is_deleted_by_recovery(state: Any) -> None:
    state.populate(initial=["running", "absent", "absent"])
    state.journal_is_the_truth()
    state.delete(choice=0, fault=Fault("fail-call", "read_exit"), force=True)
    state.journal_is_the_truth()
    state.daemon_restarts(clean=False, fault=None, while_down=[])
    state.journal_is_the_truth()
