"""Messages in Chinese through the real API handler on the deployed stack: `Accept-Language: zh-CN` (or `zh`)
makes every message Chinese (errors of each status, validation naming the field, a task's errorMessage and
effect); English stays the default; a webhook body is in the language of the task's submit."""
from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook

from aigc.providers.error_messages import user_message
from local.queues import EventSourceMappings
from local.webhook_receiver import Receiver

ZH = {"Accept-Language": "zh-CN"}
OUTPAINT = {"modelName": "image-out-painting", "imageUrl": "https://x.test/a.png"}


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_each_error_status_answers_in_chinese_and_english_stays_the_default(app):
    app.grant("alice", 15)
    cases = {
        400: dict(method="POST", path="/user/ai/tasks/submit", body={**OUTPAINT, "parameters": {"xScale": 3.5}}),
        401: dict(method="GET", path="/user/ai/tasks/list", user=None),
        402: dict(method="POST", path="/user/ai/tasks/submit",
                  body={**OUTPAINT, "parameters": {"xScale": 2, "bestQuality": True}}),
        403: dict(method="POST", path="/admin/points/grant", body={"userId": "bob", "amount": 5, "reason": "x"}),
        404: dict(method="GET", path="/user/ai/tasks/TASK-nope"),
    }
    for status, call in cases.items():
        call = {"user": "alice", **call}
        english_status, english_headers, english = app.api_with_headers(**call)
        chinese_status, chinese_headers, chinese = app.api_with_headers(**call, headers=ZH)
        assert english_status == chinese_status == status, (english, chinese)
        assert chinese["code"] == status and chinese["data"] is None
        assert _has_chinese(chinese["message"]) and not _has_chinese(english["message"]), (english, chinese)
        assert chinese_headers["Content-Language"] == "zh-CN" and english_headers["Content-Language"] == "en"
    assert app.balance("alice") == 15  # nothing changed


def test_the_402_says_jifen_buzu_and_the_401_weidenglu(app):
    app.grant("alice", 5)
    status, body = app.submit(headers=ZH, **OUTPAINT, parameters={"xScale": 2})
    assert status == 402 and "积分不足" in body["message"] and "10" in body["message"] and "5" in body["message"]
    status, body = app.api("GET", "/user/ai/tasks/list", user=None, headers={"accept-language": "zh"})
    assert status == 401 and "未登录" in body["message"]


def test_validation_errors_name_the_field_in_chinese(app):
    app.grant("alice", 100)
    status, body = app.submit(headers=ZH, **OUTPAINT, parameters={"xScale": 3.5, "zoom": 2})
    assert status == 400
    assert body["message"] == "parameters.xScale：输入应小于或等于 3; parameters.zoom：不是此模型的参数"
    status, body = app.api("POST", "/admin/points/grant", user="root", admin=True, headers=ZH,
                           body={"userId": "bob", "reason": "x", "amount": "5"})
    assert status == 400 and body["message"] == "amount：输入应为整数"
    status, body = app.api("POST", "/admin/points/grant", user="root", admin=True, headers=ZH,
                           body={"userId": "bob", "reason": "x"})
    assert status == 400 and body["message"] == "amount：必填字段"
    status, body = app.api("GET", "/user/ai/tasks/list", query={"page": "0"}, headers=ZH)
    assert status == 400 and body["message"] == "page：输入应大于或等于 1"
    status, body = app.api("POST", "/user/ai/tasks/submit", body="{not json", headers=ZH)
    assert status == 400 and body["message"].startswith("body：不是有效的 JSON")


def test_409_and_429_in_chinese(app, monkeypatch):
    from datetime import datetime, timezone

    import aigc.domain.points
    from aigc.core.config import get_settings

    monkeypatch.setattr(get_settings(), "submit_rate_limit_per_minute", 3)
    minute = datetime(2026, 1, 1, 12, 0, 30, tzinfo=timezone.utc)
    monkeypatch.setattr(aigc.domain.points, "utcnow", lambda: minute)  # all inside one minute
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx-v1", prompt="a red kite")
    task_no = body["data"]["taskNo"]
    status, body = app.api("POST", f"/user/ai/tasks/{task_no}/retry", headers=ZH)
    assert status == 409 and body["message"].startswith(f"任务 {task_no} 为 ") and "只有失败" in body["message"]
    for _ in range(3):
        status, headers, body = app.api_with_headers("POST", "/user/ai/tasks/submit", headers=ZH,
                                                     body={"modelName": "wanx-v1", "prompt": "a red kite"})
    assert status == 429 and body["message"] == "提交过于频繁：每分钟最多 3 个任务，请稍后重试", body
    assert headers["Retry-After"] == "30" and headers["Content-Language"] == "zh-CN"


def test_a_failed_tasks_error_message_follows_the_reader(app):
    """The errorMessage is written by the workflow, which has no reader: each GET renders it in the reader's
    language (seed 003's Chinese text for the provider's code)."""
    app.grant("alice", 100)
    status, body = app.submit(modelName="image-out-painting", parameters={"xScale": 2},
                              imageUrl=app.sample_url(sim_fail="InvalidParameter.FileDownload"))
    task_no = body["data"]["taskNo"]
    assert app.wait_execution(task_no)["status"] == "SUCCEEDED"
    english = app.task(task_no)
    status, chinese = app.api("GET", f"/user/ai/tasks/{task_no}", headers=ZH)
    assert english["errorCode"] == chinese["data"]["errorCode"] == "InvalidParameter.FileDownload"
    assert english["errorMessage"] == user_message("InvalidParameter.FileDownload")
    assert chinese["data"]["errorMessage"] == "输入图像下载失败，请检查图像 URL 是否有效且可公开访问。"
    assert chinese["data"]["effect"] == "扩图：按比例 xScale 2 / yScale 1" and english["effect"].startswith("expansion")
    status, listed = app.api("GET", "/user/ai/tasks/list", headers={"Accept-Language": "fr, zh;q=0.5"})
    assert listed["data"]["records"][0]["errorMessage"] == chinese["data"]["errorMessage"]


def test_a_cancel_refund_message_with_values_renders_in_the_readers_language(app):
    app.grant("alice", 100)
    status, body = app.submit(modelName="wanx-v1", prompt="a kite [sim:seconds=30]")
    task_no = body["data"]["taskNo"]
    status, body = app.api("POST", f"/user/ai/tasks/{task_no}/cancel", headers=ZH)
    assert status == 200 and body["data"]["errorMessage"] == "已被用户取消，积分已退还"
    assert app.task(task_no)["errorMessage"] == "cancelled by the user; your points were refunded"
    status, body = app.api("POST", f"/user/ai/tasks/{task_no}/cancel", headers=ZH)
    assert status == 409 and body["message"] == (
        f"任务 {task_no} 已是 cancelled 状态；只有排队中（queued）或处理中（processing）的任务可以取消")


@pytest.fixture
def receiver(app):
    mappings = EventSourceMappings(app.deployment, poll_seconds=0.05).start()
    hook = Receiver(())
    yield hook
    mappings.stop()
    hook.stop()


def test_a_webhook_body_is_in_the_language_of_the_tasks_submit(app, receiver):
    app.grant("alice", 100)
    tasks = {}
    for language in ("zh-CN", "en"):
        status, body = app.submit(headers={"Accept-Language": language}, modelName="wanx-v1",
                                  prompt="a kite [sim:fail=DataInspectionFailed]", webhook=receiver.url,
                                  webhookEventsFilter=["completed"])
        assert status == 200, body
        tasks[body["data"]["taskNo"]] = language
    deliveries = receiver.wait_for(2)
    status, secret = app.api("GET", "/user/webhooks/secret")
    bodies = {payload["data"]["taskNo"]: payload["data"] for payload in
              (Webhook(secret["data"]["secret"]).verify(raw, headers) for headers, raw in deliveries)}
    chinese = next(task_no for task_no, language in tasks.items() if language == "zh-CN")
    english = next(task_no for task_no, language in tasks.items() if language == "en")
    assert bodies[chinese]["errorMessage"] == "您的提示词或图像可能包含不当内容，请修改后重试。"
    assert bodies[english]["errorMessage"] == user_message("DataInspectionFailed")
    # whoever reads the task later reads it in their own language
    time.sleep(0.2)
    assert app.task(chinese)["errorMessage"] == user_message("DataInspectionFailed")


def test_503_in_chinese_with_retry_after(app, monkeypatch):
    import aigc.store.executions

    def down(*_args, **_kwargs):
        raise RuntimeError("Step Functions is down")

    monkeypatch.setattr(aigc.store.executions, "start_task_execution", down)
    app.grant("alice", 100)
    status, headers, body = app.api_with_headers("POST", "/user/ai/tasks/submit", headers=ZH,
                                                 body={"modelName": "wanx-v1", "prompt": "a red kite"})
    assert status == 503 and body["message"] == "任务无法启动，积分已退还，请重试" and headers["Retry-After"]
    task = app.api("GET", "/user/ai/tasks/list", headers=ZH)[1]["data"]["records"][0]
    assert task["errorCode"] == "StartFailed" and task["errorMessage"] == "任务无法启动，积分已退还"
    assert app.balance("alice") == 100
