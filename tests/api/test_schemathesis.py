"""Property-based requests generated from the OpenAPI spec against a live server: no input may produce a
server error, and every response must match its documented schema."""

import schemathesis
from hypothesis import HealthCheck, given, settings

from core.settings import Settings
from tests.api.conftest import LiveServer


def test_no_server_errors_on_generated_requests():
    server_settings = Settings(environment="test", prediction_log_url="", max_batch_size=8, _env_file=None)
    with LiveServer(server_settings) as client:
        schema = schemathesis.openapi.from_url(f"{client.base_url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} >= {"/moderate", "/moderate/batch", "/normalize", "/ready"}
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
            def check(case):
                response = case.call()
                assert response.status_code < 500, (case.path, case.body, response.status_code, response.text[:300])
                case.validate_response(response)

            check()
