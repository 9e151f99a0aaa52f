"""The local API Gateway front (local/front.py): what HTTP API answers when the integration is slow or fails."""
from __future__ import annotations

import json
import threading
import time

from local import auth
from local import cfn
from local.front import ApiFront, StageThrottle, compile_route, throttle_from_template


def _front(invoke, timeout: float) -> ApiFront:
    front = ApiFront([compile_route("GET", "/models", authorized=False)], "ApiFunction",
                     verifier=auth.Verifier(None), invoke=invoke)
    front.integration_timeout = timeout
    front.ready.set()
    return front


def test_an_answer_within_the_integration_timeout_is_passed_on():
    front = _front(lambda event: (json.dumps({"statusCode": 200, "body": "{}"}), False), timeout=2)
    status, _, _ = front.handle("GET", "/models", [], b"", "127.0.0.1")
    assert status == 200


def test_no_answer_within_the_integration_timeout_is_api_gateways_503_and_the_invocation_runs_on():
    finished = threading.Event()

    def slow(event):
        time.sleep(1.0)
        finished.set()
        return json.dumps({"statusCode": 200, "body": "{}"}), False

    front = _front(slow, timeout=0.3)
    started = time.monotonic()
    status, _, body = front.handle("GET", "/models", [], b"", "127.0.0.1")
    assert (status, json.loads(body)) == (503, {"message": "Service Unavailable"})
    assert time.monotonic() - started < 0.9  # answered at the timeout, not when the function ended
    assert finished.wait(3)  # API Gateway stopped waiting; the function did not stop


def test_a_function_error_is_api_gateways_500():
    front = _front(lambda event: (json.dumps({"errorType": "ValueError", "errorMessage": "x"}), True), timeout=2)
    status, _, body = front.handle("GET", "/models", [], b"", "127.0.0.1")
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_stage_throttle_passes_a_burst_then_the_rate_and_refuses_the_rest_before_the_function():
    invoked = []
    front = _front(lambda event: invoked.append(1) or (json.dumps({"statusCode": 200, "body": "{}"}), False), timeout=2)
    clock = Clock()
    front.throttle = StageThrottle(rate=2, burst=3, clock=clock)

    statuses = [front.handle("GET", "/models", [], b"", "127.0.0.1")[0] for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]  # the burst, then an empty bucket
    clock.now = 1.0  # a second refills `rate` tokens
    statuses = [front.handle("GET", "/models", [], b"", "127.0.0.1")[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = front.handle("GET", "/models", [], b"", "127.0.0.1")
    assert json.loads(refused[2]) == {"message": "Too Many Requests"}  # API Gateway's own body, no Retry-After
    assert len(invoked) == 5 and front.throttle.refused == 4


def test_the_throttle_is_the_templates_stage_setting_with_the_deployments_parameters():
    from local.stack import TEMPLATE

    template = cfn.load_template(TEMPLATE)
    resolver = cfn.Resolver(template, {"ApiThrottleRateLimit": "7", "ApiThrottleBurstLimit": "9"})
    throttle = throttle_from_template(template, resolver)
    assert (throttle.rate, throttle.burst) == (7.0, 9)
