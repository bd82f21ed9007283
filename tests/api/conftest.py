"""Fixtures for the API tests: a simulated-runtime daemon served on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.support import SimulatedServer


@pytest.fixture
def server() -> Iterator[SimulatedServer]:
    served = SimulatedServer()
    try:
        yield served
    finally:
        served.close()
