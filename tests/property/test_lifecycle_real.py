"""The lifecycle conformance machine on real runtimes under conmon, with a small budget.

External events happen for real: the init is killed with ``runc kill``, a conmon with SIGKILL
by its pid, a container is paused with ``runc pause`` behind bosun's back. Each history runs
under its own short private root, and its teardown deletes every container under that root's
runtime directory and kills every conmon whose pid file lies under it.
"""

from __future__ import annotations

import pytest

from bosun.conformance import RealBackend, lifecycle_machine, real_runtime_problem, run_conformance

pytestmark = [pytest.mark.slow]

EXAMPLES = 5
STEPS = 15


def check_runtime(runtime: str) -> None:
    problem = real_runtime_problem(runtime)
    if problem is not None:
        pytest.skip(problem)

    def make_backend() -> RealBackend:
        return RealBackend(runtime)

    machine = lifecycle_machine(make_backend, features=RealBackend.features)
    # Fixed histories and no shrinking keep this CI job repeatable and bounded in time;
    # ``python -m bosun.conformance`` draws new histories on every run.
    run_conformance(machine, examples=EXAMPLES, steps=STEPS, shrink=False, derandomize=True)


@pytest.mark.runc
def test_runc_histories_follow_the_rules() -> None:
    check_runtime("runc")


@pytest.mark.crun
def test_crun_histories_follow_the_rules() -> None:
    # crun refuses this host's hybrid cgroup layout; the skip then carries crun's own words.
    check_runtime("crun")
