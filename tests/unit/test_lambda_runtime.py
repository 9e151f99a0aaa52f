"""The local Lambda runtime: one invocation per environment, a pool per function, timeouts."""
import json
import sys
import threading
import time

from local.lambda_runtime import Function, load_handler


def _recording_factory(hold: float):
    """Handlers that record which environment ran each invocation and how many ran at once."""
    state = {"running": {}, "max_per_env": 0, "max_total": 0, "total": 0}
    lock = threading.Lock()

    def factory(number):
        def handler(event, context):
            with lock:
                state["running"][number] = state["running"].get(number, 0) + 1
                state["total"] += 1
                state["max_per_env"] = max(state["max_per_env"], state["running"][number])
                state["max_total"] = max(state["max_total"], state["total"])
            time.sleep(hold)
            with lock:
                state["running"][number] -= 1
                state["total"] -= 1
            return {"environment": number}
        return handler

    return factory, state


def _invoke_parallel(function: Function, count: int) -> list[tuple[str, bool]]:
    results = [None] * count

    def one(i):
        results[i] = function.invoke({"i": i}, "arn")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_invocations_get_their_own_environments():
    factory, state = _recording_factory(hold=0.3)
    function = Function("f", factory, timeout=10)
    results = _invoke_parallel(function, 5)
    assert all(not errored for _, errored in results)
    assert state["max_per_env"] == 1
    assert function.environments_created == 5
    # Sequential invocations reuse a warm environment.
    function.invoke({}, "arn")
    function.invoke({}, "arn")
    assert function.environments_created == 5


def test_the_pool_is_capped_like_reserved_concurrency():
    factory, state = _recording_factory(hold=0.2)
    function = Function("f", factory, timeout=10, concurrency=2, reserved=True)
    results = _invoke_parallel(function, 6)
    assert all(not errored for _, errored in results), results
    assert state["max_total"] == 2
    assert function.environments_created == 2


def test_a_reserved_function_past_its_reservation_for_its_timeout_is_throttled():
    factory, _ = _recording_factory(hold=2.5)
    function = Function("f", factory, timeout=1, concurrency=1, reserved=True)
    results = _invoke_parallel(function, 3)
    errors = [json.loads(payload)["errorType"] for payload, errored in results if errored]
    # the first runs past its 1 s timeout (Sandbox.Timedout) and frees the one environment at 1 s, which one
    # of the two waiting since 0 s takes; the other's 1 s of waiting is over: throttled
    assert len(errors) == 3 and "TooManyRequestsException" in errors and "Sandbox.Timedout" in errors


def test_an_unreserved_function_is_never_throttled_here_it_waits_for_this_machines_environments():
    """Lambda would scale it out; locally the environments stand in for the process's cores, so past them an
    invocation waits (however long, its own timeout starting when it runs) instead of failing."""
    factory, state = _recording_factory(hold=0.4)
    function = Function("f", factory, timeout=1, concurrency=2)
    started = time.monotonic()
    results = _invoke_parallel(function, 6)
    assert all(not errored for _, errored in results), results
    assert state["max_total"] == 2 and function.environments_created == 2
    assert function.waited_for_environment == 4
    assert time.monotonic() - started >= 1.1  # three rounds of 0.4 s: the last waited past the 1 s timeout


def test_an_invocation_past_its_timeout_is_a_lambda_timeout_error():
    release = threading.Event()

    def factory(number):
        def handler(event, context):
            release.wait(10)
            return {"late": True}
        return handler

    function = Function("slow", factory, timeout=1)
    started = time.monotonic()
    payload, errored = function.invoke({}, "arn")
    elapsed = time.monotonic() - started
    release.set()
    assert errored
    assert json.loads(payload) == {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 1.00 seconds"}
    assert 0.9 < elapsed < 5
    # The timed-out environment is discarded: the next invocation starts a new one.
    function.invoke({}, "arn")
    assert function.environments_created == 2


def test_each_environment_has_its_own_api_module(monkeypatch):
    from local.openapi import PLACEHOLDER_ENVIRONMENT

    for name, value in PLACEHOLDER_ENVIRONMENT.items():  # the API validates its environment when loaded
        monkeypatch.setenv(name, value)
    first = load_handler("functions/api", "app.handler", instance=101)
    load_handler("functions/api", "app.handler", instance=102)
    resolvers = [sys.modules[f"_fn_api_app_env{n}"].app for n in (101, 102)]
    assert resolvers[0] is not resolvers[1]  # powertools' resolver holds the current request
    assert load_handler("functions/api", "app.handler", instance=101) is first


def test_a_handler_error_has_the_runtime_error_shape():
    def factory(number):
        def handler(event, context):
            raise ValueError("bad input")
        return handler

    payload, errored = Function("f", factory).invoke({}, "arn")
    body = json.loads(payload)
    assert errored and body["errorType"] == "ValueError" and body["errorMessage"] == "bad input"


def test_each_environment_has_its_own_metrics():
    """powertools shares metrics across a process; environments (threads here) must not."""
    from aws_lambda_powertools import Metrics

    from local.lambda_runtime import isolate_metrics

    undo = isolate_metrics()
    try:
        metrics = Metrics(namespace="Test", service="t")
        flushed = {}

        def factory(number):
            @metrics.log_metrics(raise_on_empty_metrics=True)
            def handler(event, context):
                metrics.add_metric(name=f"m{event['i']}", unit="Count", value=1)
                time.sleep(0.2)  # the other environment adds and flushes meanwhile
                flushed[event["i"]] = sorted(metrics.provider.metric_set)
                return {}
            return handler

        function = Function("m", factory, timeout=10)
        results = _invoke_parallel(function, 4)
        assert all(not errored for _, errored in results), results
        assert flushed == {i: [f"m{i}"] for i in range(4)}
    finally:
        undo()


def _http_api_event(user: str) -> dict:
    return {"version": "2.0", "routeKey": "GET /me", "rawPath": "/me", "rawQueryString": "",
            "headers": {"x-user": user},
            "requestContext": {"http": {"method": "GET", "path": "/me", "protocol": "HTTP/1.1",
                                        "sourceIp": "127.0.0.1", "userAgent": "t"},
                               "stage": "$default", "requestId": user, "routeKey": "GET /me"},
            "isBase64Encoded": False}


def test_concurrent_api_invocations_answer_their_own_request():
    """powertools keeps the current request on the class; each environment must see its own."""
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    from local.lambda_runtime import isolate_router_requests

    undo = isolate_router_requests()
    try:
        def factory(number):
            app = APIGatewayHttpResolver()  # each environment's module instance has its own resolver

            @app.get("/me")
            def me():
                asked = app.current_event.headers["x-user"]
                time.sleep(0.05)  # another environment resolves its own request meanwhile
                return {"asked": asked, "answered": app.current_event.headers["x-user"],
                        "request": app.lambda_context.aws_request_id != ""}

            return app.resolve
        function = Function("api", factory, timeout=10)
        results = [None] * 40

        def one(i):
            payload, errored = function.invoke(_http_api_event(f"user{i}"), "arn")
            results[i] = (json.loads(json.loads(payload)["body"]), errored)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert function.environments_created > 1
        for i, (body, errored) in enumerate(results):
            assert not errored and body == {"asked": f"user{i}", "answered": f"user{i}", "request": True}
    finally:
        undo()
