"""Property-based fuzzing of the API from its own /openapi.json: no input may cause a 5xx.

Schemathesis generates requests for every operation of the schema (valid and invalid bodies,
parameters and headers); the server must answer each with a non-5xx status and no traceback.
Hypothesis drives it directly (schemathesis' pytest plugin does not support this pytest).
"""

import pytest
from serve_testkit import running_server

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (after the importorskip above)
from schemathesis.checks import not_a_server_error  # noqa: E402

EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def fuzzed_server(nano):
    # A short context keeps every generated request cheap (max_tokens is capped by it).
    with running_server(nano, max_model_len=48, kv_blocks=64, block_size=8, max_batch=4) as s:
        yield s


def test_no_generated_input_causes_a_server_error(fuzzed_server):
    url, engine = fuzzed_server
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"POST /v1/chat/completions", "POST /v1/completions", "POST /tokenize"} <= labels
    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        def fuzz(case):
            response = case.call_and_validate(base_url=url, checks=[not_a_server_error])
            assert "Traceback" not in response.text

        fuzz()
    assert engine.alive
