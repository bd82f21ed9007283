"""Fuzz every API operation from the daemon's own OpenAPI document with schemathesis.

The daemon runs in-process on the simulated runtime and serves over TCP on 127.0.0.1 with an
ephemeral port. Schemathesis sends both schema-conforming and schema-violating requests to it.
Each reply must not be a 5xx, and every 4xx reply must carry the error shape
``{"error": {"code", "message"}}``.

NOTE: the schema is built from ``openapi_document()`` at import, and one test checks that the
served ``/openapi.json`` is that same document. Loading it lazily from the server through
``schemathesis.pytest.from_fixture`` fails in schemathesis 4.32.5 under pytest 9.2 with
"'Function' object has no attribute '_nodeid'".
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from bosun.api import openapi_document
from tests.api.support import SimulatedServer

# Kept small so that the whole module finishes in about two minutes.
MAX_EXAMPLES = 30

# A wait without a timeout blocks until the container's init exits, and a fuzzed container
# never exits. So each generated wait gets a timeout of this many seconds.
WAIT_LIMIT = 0.2


@pytest.fixture(scope="module")
def fuzzed_server() -> Iterator[SimulatedServer]:
    served = SimulatedServer()
    try:
        # A container the generated ids can hit: hypothesis tries short ids such as "0" first.
        bundle = served.bundle("bundle0")
        reply = served.request("POST", "/v1/containers", json={"id": "0", "bundle": str(bundle), "start": True})
        assert reply.status_code == 201, reply.text
        yield served
    finally:
        served.close()


schema = schemathesis.openapi.from_dict(openapi_document())


def test_served_document_matches_models(fuzzed_server: SimulatedServer) -> None:
    reply = fuzzed_server.request("GET", "/openapi.json")

    assert reply.status_code == 200
    assert reply.json() == openapi_document()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_fuzz_no_server_errors(case: schemathesis.Case, fuzzed_server: SimulatedServer) -> None:
    if case.operation.path.endswith("/wait"):
        case.query = {**(case.query or {}), "timeout": WAIT_LIMIT}
    if case.operation.path == "/v1/events" or case.operation.path.endswith("/logs"):
        # Following a stream never ends on its own.
        case.query = {**(case.query or {}), "follow": "false"}

    response = case.call(base_url=fuzzed_server.base_url, timeout=30)

    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert isinstance(body["error"].get("code"), str), body
        assert isinstance(body["error"].get("message"), str), body
