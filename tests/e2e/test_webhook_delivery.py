"""Webhooks on the running local stack (`python -m local`): submit over HTTP with a webhook to a
receiver in this test; the stack's event source mappings carry the task's changes to the
delivery function, which POSTs them signed."""
from __future__ import annotations

import json
import time

from standardwebhooks import Webhook

from tests.e2e.conftest import new_user
from local.webhook_receiver import Receiver


def test_a_task_with_a_webhook_gets_exactly_one_signed_completed_delivery(stack):
    user = new_user("hook")
    stack.grant(user, 100)
    receiver = Receiver()
    try:
        response = stack.submit(user, modelName="wanx-v1", prompt="a red kite", webhook=receiver.url,
                                webhookEventsFilter=["completed"])
        assert response.status_code == 200, response.text
        task_no = response.json()["data"]["taskNo"]
        assert stack.wait_task(user, task_no)["status"] == "completed"
        (headers, raw), = receiver.wait_for(1, timeout=30)
        time.sleep(1.5)
        assert len(receiver.deliveries) == 1
        secret = stack.call("GET", "/user/webhooks/secret", user=user).json()["data"]["secret"]
        payload = Webhook(secret).verify(raw, headers)
        assert payload["event"] == "completed" and payload["data"]["taskNo"] == task_no
        assert payload["data"]["status"] == "completed"
        assert json.loads(raw)["data"]["pointsCost"] == 20
        assert stack.balance(user) == 80
    finally:
        receiver.stop()
