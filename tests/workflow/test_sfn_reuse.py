"""Executions on the local stack share the parsed definition and the Lambda client (local/sfn_reuse.py):
the definition is parsed once for any number of executions, and each still runs its own course."""
from __future__ import annotations

from local import sfn_reuse


def test_executions_share_one_parsed_definition_and_one_lambda_client_and_still_run_apart(app):
    app.grant("alice", 100)
    before = sfn_reuse._parse.cache_info()
    task_nos = []
    for prompt in ("a cat", "a dog", "a fox"):
        status, body = app.submit(modelName="sc_soraimg_text_1x1", prompt=prompt)
        assert status == 200, body
        task_nos.append(body["data"]["taskNo"])
    ended = [app.wait_execution(task_no) for task_no in task_nos]

    assert [e["status"] for e in ended] == ["SUCCEEDED"] * 3
    assert [app.task(t)["status"] for t in task_nos] == ["completed"] * 3
    after = sfn_reuse._parse.cache_info()
    assert after.misses - before.misses <= 1 and after.hits - before.hits >= 2  # parsed at most once
    assert [key[1] for key in sfn_reuse._CLIENTS] == ["lambda"]  # one client for every Lambda task
