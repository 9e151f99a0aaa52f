"""The HTTP API contract (seed 001, extended), through the real handler on the deployed stack.
Rejected requests must change nothing: balance, ledger and task list are checked each time."""
from __future__ import annotations

import pytest


def _nothing_changed(app, user: str, balance: int) -> None:
    assert app.balance(user) == balance
    assert app.ledger(user) == [("GRANT", balance)] if balance else app.ledger(user) == []
    status, body = app.api("GET", "/user/ai/tasks/list", user=user)
    assert body["data"]["total"] == 0


@pytest.mark.parametrize("request_body, field", [
    ({"modelName": "image-out-painting", "imageUrl": "https://x.test/a.png", "parameters": {"xScale": 3.5}},
     "parameters.xScale"),
    ({"modelName": "image-out-painting", "imageUrl": "https://x.test/a.png", "parameters": {"angle": 360}},
     "parameters.angle"),
    ({"modelName": "image-out-painting", "imageUrl": "https://x.test/a.png", "parameters": {"outputRatio": "2:1"}},
     "parameters.outputRatio"),
    ({"modelName": "image-out-painting", "imageUrl": "https://x.test/a.png", "parameters": {"leftOffset": -1}},
     "parameters.leftOffset"),
    ({"modelName": "image-out-painting", "imageUrl": "https://x.test/a.png", "parameters": {"zoom": 2}},
     "parameters.zoom"),
    ({"modelName": "image-out-painting", "imageUrl": "https://x.test/a.png", "parameters": {}}, "parameters"),
    ({"modelName": "image-out-painting", "parameters": {"xScale": 2}}, "imageUrl"),
    ({"modelName": "image-out-painting", "imageUrl": "ftp://x.test/a.png", "parameters": {"xScale": 2}}, "imageUrl"),
    ({"modelName": "sc_soraimg_text_1x1"}, "prompt"),
    ({"modelName": "sc_soraimg_text_1x1", "prompt": "cat", "imageUrl": "https://x.test/a.png"}, "imageUrl"),
    ({"modelName": "sc_soraimg_img2img_1x1", "prompt": "cat", "imageUrl": "[\"https://x.test/a.png\""}, "imageUrl"),
    ({"modelName": "wanx-v1", "prompt": "cat", "parameters": {"n": 5}}, "parameters.n"),
    ({"prompt": "cat"}, "modelName"),
])
def test_bad_input_is_400_naming_the_field_and_changes_nothing(app, request_body, field):
    app.grant("alice", 100)
    status, body = app.submit(**request_body)
    assert status == 400 and body["code"] == 400, body
    assert body["message"].startswith(field), body["message"]
    _nothing_changed(app, "alice", 100)


def test_snake_case_and_camel_case_parameters_are_the_same(app):
    app.grant("alice", 100)
    camel = app.submit(modelName="image-out-painting", imageUrl="https://x.test/a.png",
                       parameters={"xScale": 2, "yScale": 1.5, "bestQuality": True})[1]["data"]
    snake = app.submit(modelName="image-out-painting", imageUrl="https://x.test/b.png",
                       parameters={"x_scale": 2, "y_scale": 1.5, "best_quality": True})[1]["data"]
    assert camel["parameters"] == snake["parameters"]
    assert camel["parameters"]["x_scale"] == 2 and camel["parameters"]["best_quality"] is True
    assert camel["pointsCost"] == snake["pointsCost"] == 20  # best quality doubles the price


def test_priority_rules_say_which_mode_took_effect(app):
    app.grant("alice", 100)
    data = app.submit(modelName="image-out-painting", imageUrl="https://x.test/a.png",
                      parameters={"angle": 90, "outputRatio": "4:3", "xScale": 2, "leftOffset": 100})[1]["data"]
    assert data["parameters"] == {"angle": 90, "output_ratio": "4:3", "best_quality": False,
                                  "limit_image_size": True, "add_watermark": False}
    assert "outputRatio 4:3" in data["effect"] and "rotation by 90" in data["effect"]
    assert "ignored" in data["effect"] and "xScale" in data["effect"] and "offsets" in data["effect"]


def test_multi_reference_image_url_forms(app):
    app.grant("alice", 200)
    urls = ["https://x.test/1.png", "https://x.test/2.png"]
    as_string = app.submit(modelName="sc_soraimg_img2img_3x2", prompt="merge",
                           imageUrl='["https://x.test/1.png","https://x.test/2.png"]')[1]["data"]
    as_array = app.submit(modelName="sc_soraimg_img2img_3x2", prompt="merge", imageUrl=urls)[1]["data"]
    assert as_string["imageUrl"] == as_array["imageUrl"] == urls
    single = app.submit(modelName="sc_soraimg_img2img_1x1", prompt="toy", imageUrl=urls[0])[1]["data"]
    assert single["imageUrl"] == urls[0]


def test_not_enough_points_is_402_with_cost_and_balance(app):
    app.grant("alice", 25)
    status, body = app.submit(modelName="sc_soraimg_text_1x1", prompt="a cat")
    assert status == 402 and body["code"] == 402
    assert "30" in body["message"] and "25" in body["message"]
    _nothing_changed(app, "alice", 25)


def test_unknown_model_is_404(app):
    status, body = app.submit(modelName="no-such-model", prompt="x")
    assert status == 404 and "no-such-model" in body["message"]


def test_not_logged_in_is_401(app):
    status, body = app.api("GET", "/user/points/consumption/balance", user=None)
    assert status == 401 and body["code"] == 401


def test_another_users_task_is_404(app):
    app.grant("alice", 100)
    task_no = app.submit(modelName="sc_soraimg_text_1x1", prompt="cat")[1]["data"]["taskNo"]
    status, body = app.api("GET", f"/user/ai/tasks/{task_no}", user="mallory")
    assert status == 404
    assert app.api("GET", f"/user/ai/tasks/{task_no}", user="alice")[0] == 200


def test_idempotency_key_returns_the_same_task_without_a_second_debit(app):
    app.grant("alice", 100)
    headers = {"Idempotency-Key": "order-42"}
    request = dict(modelName="sc_soraimg_text_1x1", prompt="a cat")
    first = app.submit(headers=headers, **request)
    second = app.submit(headers=headers, **request)
    assert first[0] == second[0] == 200
    assert first[1]["data"]["taskNo"] == second[1]["data"]["taskNo"]
    assert app.balance("alice") == 70
    status, body = app.submit(headers=headers, modelName="sc_soraimg_text_1x1", prompt="a dog")
    assert status == 409 and "Idempotency-Key" in body["message"]
    # the same key of another user is another request
    app.grant("bob", 100)
    other = app.submit(user="bob", headers=headers, **request)[1]["data"]
    assert other["taskNo"] != first[1]["data"]["taskNo"]
    assert app.balance("alice") == 70 and app.balance("bob") == 70


def test_rate_limit_is_429_and_charges_nothing(app, monkeypatch):
    from datetime import datetime, timezone

    import aigc.domain.points
    from aigc.core.config import get_settings

    monkeypatch.setattr(get_settings(), "submit_rate_limit_per_minute", 3)
    minute = datetime(2026, 1, 1, 12, 0, 30, tzinfo=timezone.utc)
    monkeypatch.setattr(aigc.domain.points, "utcnow", lambda: minute)  # all four inside one minute
    app.grant("alice", 1000)
    statuses = [app.api_with_headers("POST", "/user/ai/tasks/submit",
                                     body={"modelName": "sc_soraimg_text_1x1", "prompt": f"cat {i}"})
                for i in range(4)]
    assert [status for status, _, _ in statuses] == [200, 200, 200, 429]
    assert statuses[3][2]["code"] == 429 and "3 tasks a minute" in statuses[3][2]["message"]
    assert statuses[3][1]["Retry-After"] == "30"  # the rest of the minute whose limit is used up
    assert app.balance("alice") == 1000 - 90
    assert app.api("GET", "/user/ai/tasks/list", user="alice")[1]["data"]["total"] == 3
    # the next minute has room again
    monkeypatch.setattr(aigc.domain.points, "utcnow", lambda: minute.replace(minute=1))
    assert app.submit(modelName="sc_soraimg_text_1x1", prompt="next minute")[0] == 200


def test_lists_are_newest_first_with_filters_and_pages(app):
    app.grant("alice", 1000)
    made = []
    for request in [dict(modelName="sc_soraimg_text_1x1", prompt="a"), dict(modelName="wanx-v1", prompt="b"),
                    dict(modelName="image-out-painting", imageUrl="https://x.test/c.png", parameters={"xScale": 2})]:
        made.append(app.submit(**request)[1]["data"]["taskNo"])
    status, body = app.api("GET", "/user/ai/tasks/list", query={"page": 1, "size": 2})
    assert status == 200
    assert [t["taskNo"] for t in body["data"]["records"]] == made[::-1][:2]
    assert body["data"]["total"] == 3 and body["data"]["pages"] == 2
    page2 = app.api("GET", "/user/ai/tasks/list", query={"page": 2, "size": 2})[1]["data"]
    assert [t["taskNo"] for t in page2["records"]] == [made[0]]
    typed = app.api("GET", "/user/ai/tasks/list", query={"taskType": "text_to_image"})[1]["data"]
    assert typed["total"] == 2 and {t["taskNo"] for t in typed["records"]} == set(made[:2])
    outpainting = app.api("GET", "/user/ai/tasks/list", query={"taskType": "outpainting"})[1]["data"]
    assert [t["taskNo"] for t in outpainting["records"]] == [made[2]]
    app.wait_execution(made[0])  # the sync model completes at once; the filter by status sees it
    done = app.api("GET", "/user/ai/tasks/list", query={"status": "completed"})[1]["data"]
    assert made[0] in {t["taskNo"] for t in done["records"]}
    bad = app.api("GET", "/user/ai/tasks/list", query={"size": 0})
    assert bad[0] == 400 and "size" in bad[1]["message"]
    bad_type = app.api("GET", "/user/ai/tasks/list", query={"taskType": "video"})
    assert bad_type[0] == 400
    records = app.api("GET", "/user/points/consumption/records", query={"size": 10})[1]["data"]
    debits = [r for r in records["records"] if r["type"] == "debit"]
    assert [r["taskNo"] for r in debits] == made[::-1] and all(r["amount"] < 0 for r in debits)
    assert records["records"][-1]["type"] == "grant"


def test_admin_grant_needs_the_admins_group_and_is_on_the_ledger(app):
    status, body = app.api("POST", "/admin/points/grant", user="alice",
                           body={"userId": "alice", "amount": 100, "reason": "self"})
    assert status == 403
    assert app.balance("alice") == 0
    status, body = app.api("POST", "/admin/points/grant", user="root", admin=True,
                           headers={"Idempotency-Key": "promo-1"},
                           body={"userId": "alice", "amount": 100, "reason": "welcome"})
    assert status == 200 and body["data"]["balance"] == 100
    again = app.api("POST", "/admin/points/grant", user="root", admin=True, headers={"Idempotency-Key": "promo-1"},
                    body={"userId": "alice", "amount": 100, "reason": "welcome"})[1]
    assert again["data"]["applied"] is False and again["data"]["balance"] == 100
    bad = app.api("POST", "/admin/points/grant", user="root", admin=True, body={"userId": "alice", "amount": -5,
                                                                                   "reason": "x"})
    assert bad[0] == 400 and bad[1]["message"].startswith("amount")
    # One grant gives at most MaxGrantPoints (100000 by default); a larger one changes nothing.
    huge = app.api("POST", "/admin/points/grant", user="root", admin=True,
                   body={"userId": "alice", "amount": 100001, "reason": "typo"})
    assert huge[0] == 400 and "at most 100000 points per grant" in huge[1]["message"]
    assert app.ledger("alice") == [("GRANT", 100)]


def test_models_lists_the_catalog_with_prices(app):
    status, body = app.api("GET", "/models", user=None)
    assert status == 200
    models = {m["modelName"]: m for m in body["data"]}
    sora = [name for name in models if name.startswith("sc_soraimg_")]
    assert len(sora) == 8
    assert {models[n]["pointsCost"] for n in sora if "_text_" in n} == {30}
    assert {models[n]["pointsCost"] for n in sora if "_img2img_" in n} == {35}
    assert models["image-out-painting"]["taskType"] == "outpainting"
    assert "x_scale" in models["image-out-painting"]["parameters"]["properties"]


def test_malformed_json_is_400(app):
    status, body = app.api("POST", "/user/ai/tasks/submit", body="{not json")
    assert status == 400 and "JSON" in body["message"]


def test_workflow_that_cannot_start_is_refunded_at_once_and_503(app, monkeypatch):
    import aigc.store.executions

    def unavailable(task_no):
        raise RuntimeError("Step Functions is unavailable")

    monkeypatch.setattr(aigc.store.executions, "start_task_execution", unavailable)
    app.grant("alice", 100)
    status, headers, body = app.api_with_headers("POST", "/user/ai/tasks/submit",
                                                 body={"modelName": "sc_soraimg_text_1x1", "prompt": "a cat"})
    assert status == 503 and body["code"] == 503 and "refunded" in body["message"]
    assert int(headers["Retry-After"]) >= 1
    assert app.balance("alice") == 100
    [task] = app.api("GET", "/user/ai/tasks/list")[1]["data"]["records"]
    assert task["status"] == "failed" and task["errorCode"] == "StartFailed" and task["refunded"] is True
    assert app.ledger("alice", task["taskNo"]) == [("DEBIT", -30), ("REFUND", 30)]


@pytest.mark.parametrize("image_url", [
    "http://127.0.0.1:8090/samples/cat.png", "http://localhost/a.png", "http://10.0.0.8/a.png",
    "http://[::1]/a.png", "http://[fd12:3456::1]/a.png", "http://metadata.google.internal/x", "http://intranet/a.png",
])
def test_private_image_hosts_are_refused_in_aws(app, monkeypatch, image_url):
    from aigc.core.config import get_settings

    monkeypatch.setattr(get_settings(), "allow_private_hosts", False)  # as deployed (the local stack allows)
    app.grant("alice", 100)
    status, body = app.submit(modelName="image-out-painting", imageUrl=image_url, parameters={"xScale": 2})
    assert status == 400 and body["message"].startswith("imageUrl:") and "public" in body["message"], body
    _nothing_changed(app, "alice", 100)


def test_docs_with_format_json_is_the_document_as_powertools_serves_it(app):
    status, body = app.api("GET", "/docs", user=None, query={"format": "json"})
    assert status == 200 and body["openapi"].startswith("3.") and "/user/ai/tasks/submit" in body["paths"]


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=",
                                          "Multipart/Form-Data; boundary=abc", "multipart/mixed"])
def test_a_multipart_body_is_a_400_naming_the_body_and_charges_nothing(app, content_type):
    app.grant("alice", 100)
    status, body = app.api("POST", "/user/ai/tasks/submit", headers={"content-type": content_type},
                           body={"modelName": "sc_soraimg_text_1x1", "prompt": "a cat"})
    assert status == 400 and body["message"].startswith("body:"), body
    assert app.balance("alice") == 100 and app.ledger("alice") == [("GRANT", 100)]
