"""The lifecycle conformance machine on the simulated runtime: every fault, many histories."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from bosun.conformance import SimulatedBackend, lifecycle_machine

LifecycleOnSimulatedRuntime = lifecycle_machine(SimulatedBackend)
LifecycleOnSimulatedRuntime.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# pytest collects the machine's TestCase under this name.
TestLifecycleOnSimulatedRuntime = LifecycleOnSimulatedRuntime.TestCase
