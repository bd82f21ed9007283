"""The lifecycle conformance machine on the simulated runtime: every fault, many histories.

Each run draws new random histories, which is how this test finds bugs. CI sets
``BOSUN_DERANDOMIZE=1`` (see .ci/run), so every build is judged on the same fixed histories. A
random run that fails prints its history, which can become a test of its own.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from bosun.conformance import SimulatedBackend, lifecycle_machine

LifecycleOnSimulatedRuntime = lifecycle_machine(SimulatedBackend)
LifecycleOnSimulatedRuntime.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("BOSUN_DERANDOMIZE") == "1",
)

# pytest collects the machine's TestCase under this name.
TestLifecycleOnSimulatedRuntime = LifecycleOnSimulatedRuntime.TestCase
