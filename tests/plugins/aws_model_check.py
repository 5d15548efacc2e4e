"""Every AWS request the tests make, checked against botocore's service model: what AWS refuses, moto often takes.

moto_server accepts requests a real account refuses: names over 63 characters, values outside an enum, numbers out
of range, a missing required member of a nested structure. botocore's own validator (run before each request)
checks required members, types and minimum lengths, but not maximum lengths, patterns or enums. This plugin records
every call any boto3 client makes in this test process (through `BaseClient._make_api_call`, so the SageMaker SDK's
and s3transfer's calls too) and checks its parameters against the operation's input shape:

  required members; string length (`min`/`max`) and `pattern` (the model's Java regex, matched against the whole
  value); `enum`; list and map sizes; integer, long, float and double ranges; nested structures, lists and maps.

The check itself is `core.aws.shape_problems`, which the code also runs on the names it generates before sending
anything (deployment.model_deployment.check_names). A test whose calls break a rule fails at teardown with one
line per problem (service, operation, member path, value, rule). The terminal summary says how many calls and
operations were checked.

Fixture: `aws_calls` -> the list of AwsCall(service, operation, params) the current test made (tests may assert on
what was sent, e.g. the transform job's generated name).

Only this process is covered: a CLI the tests run in a subprocess is not recorded.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class AwsCall:
    service: str
    operation: str
    params: dict[str, Any]


_lock = threading.Lock()
_calls: list[AwsCall] = []
_totals = {"calls": 0, "operations": set(), "problems": 0}
_problems: list[str] = []


def problems_of(call: AwsCall, client_meta) -> list[str]:
    from core.aws import shape_problems

    operation = client_meta.service_model.operation_model(call.operation)
    return [f"{call.service} {call.operation}: {p}" for p in shape_problems(operation.input_shape, call.params)]


_installed = False


def install() -> None:
    """Wrap botocore's BaseClient._make_api_call once: record and check every call."""
    global _installed
    if _installed:
        return
    from botocore.client import BaseClient

    original = BaseClient._make_api_call

    @functools.wraps(original)
    def recording(self, operation_name, api_params):
        call = AwsCall(self.meta.service_model.service_name, operation_name, dict(api_params))
        try:
            found = problems_of(call, self.meta)
        except Exception as exc:  # noqa: BLE001 - the check must never be why a test fails oddly
            found = [f"{call.service} {call.operation}: the model check itself failed: {exc}"]
        with _lock:
            _calls.append(call)
            _totals["calls"] += 1
            _totals["operations"].add(f"{call.service}:{operation_name}")
            _problems.extend(found)
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = recording
    _installed = True


def pytest_configure(config) -> None:
    install()


@pytest.fixture(autouse=True)
def _aws_service_model_check():
    """Fails the test (at teardown) when any AWS call it made breaks the service model."""
    with _lock:
        _calls.clear()
        _problems.clear()
    yield
    with _lock:
        found = list(dict.fromkeys(_problems))
        _problems.clear()
        _totals["problems"] += len(found)
    if found:
        pytest.fail("AWS would refuse these requests (botocore service model):\n  " + "\n  ".join(found),
                    pytrace=False)


@pytest.fixture
def aws_calls() -> list[AwsCall]:
    """The AWS calls the current test has made so far (live list)."""
    return _calls


def pytest_terminal_summary(terminalreporter) -> None:
    if _totals["calls"]:
        terminalreporter.write_line(
            f"AWS service-model check: {_totals['calls']} calls, {len(_totals['operations'])} operations, "
            f"{_totals['problems']} problems")
