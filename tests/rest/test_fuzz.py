"""Fuzzing the OpenAPI document with schemathesis against the real server process.

Requests are generated from the document the server serves (valid and invalid
parameters and bodies, with the operate token); every answer must be documented:
no 5xx, a documented status, content type and body schema. The run is bounded
(:data:`EXAMPLES` per operation). Left out: the event streams (they do not end) and
stopping workers (the suite's worker serves every other test).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.rest.conftest import OPERATE_TOKEN, Http

#: Generated requests per operation: a few hundred in all.
EXAMPLES = 12
LEFT_OUT = ["run_events", "follow_logs", "all_events", "stop_worker", "stop_worker_1x"]


def fuzzed_operations(http: Http) -> list[Any]:
    import schemathesis

    document = http.get("/api/v2/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document).exclude(operation_id=LEFT_OUT)
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(operation: Any, url: str, calls: list[int]) -> str | None:
    """Call one operation with generated requests; the first failure, if any."""
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    headers = {"Authorization": f"Bearer {OPERATE_TOKEN}"}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def call(case: Any) -> None:
        response = case.call(base_url=url, headers=headers, timeout=60)
        calls.append(response.status_code)
        case.validate_response(response, checks=checks)

    try:
        call()
    except Exception as error:
        return f"{operation.label}: {error}"
    return None


def test_every_answer_is_documented_and_none_is_a_5xx(http: Http) -> None:
    operations = fuzzed_operations(http)
    assert len(operations) >= 20
    calls: list[int] = []
    failures = [failure for op in operations if (failure := fuzz(op, http.url, calls))]
    assert not failures, "\n\n".join(failures[:5])
    assert len(calls) >= 100
    assert max(calls) < 500


@pytest.fixture(autouse=True)
def _no_leftover_runs(http: Http) -> Any:
    """Runs the fuzzer queued on queues no worker consumes are stopped afterwards."""
    yield
    queued = http.get("/api/v2/runs", params={"state": "queued", "limit": 1000}).json()["runs"]
    for run in queued:
        http.post(f"/api/v2/runs/{run['id']}/stop")
