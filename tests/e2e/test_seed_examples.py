"""Seed 001's Python example, verbatim except the token and the base URL's port, then the poll
(seed 001's JavaScript polling loop, in Python) and the balance query."""
from __future__ import annotations

import contextlib
import io
import time

from tests.e2e.conftest import new_user

# Seed 001, section 3.3 "Python Requests 示例" (text-to-image), as published.
SEED_001_PYTHON = '''
import requests

url = "http://localhost:8081/user/ai/tasks/submit"
headers = {
    "Content-Type": "application/json",
    "Authorization": f"Bearer {YOUR_JWT_TOKEN}"
}
data = {
    "modelName": "sc_soraimg_text_1x1",
    "prompt": "梦幻的樱花树下,粉色花瓣飘落,动漫风格"
}

response = requests.post(url, json=data, headers=headers)
result = response.json()
print(f"任务编号: {result['data']['taskNo']}")
print(f"任务状态: {result['data']['status']}")
'''


def test_seed_001_python_example_submit_poll_balance(stack):
    user = new_user("seed")
    stack.grant(user, 100)
    base = f"http://localhost:{stack.port}"  # seed 001's base URL is http://localhost:8081
    code = SEED_001_PYTHON.replace("http://localhost:8081", base)
    scope = {"YOUR_JWT_TOKEN": stack.token(user)}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "seed_001_python_example", "exec"), scope)  # the seed's own example
    assert scope["response"].status_code == 200, scope["response"].text
    lines = printed.getvalue().splitlines()
    task_no = scope["result"]["data"]["taskNo"]
    assert lines == [f"任务编号: {task_no}", "任务状态: queued"]

    # Poll as seed 001's JavaScript does (GET /user/ai/tasks/{taskNo} until completed or failed).
    import requests

    headers = {"Authorization": f"Bearer {scope['YOUR_JWT_TOKEN']}"}
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status_result = requests.get(f"{base}/user/ai/tasks/{task_no}", headers=headers).json()
        status = status_result["data"]["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in ("completed", "failed"):
            break
        time.sleep(0.2)
    assert seen[-1] == "completed", seen
    assert set(seen) <= {"queued", "processing", "completed"}
    assert status_result["code"] == 200 and status_result["message"] == "success"
    assert status_result["data"]["resultUrl"] and status_result["data"]["progress"] == 100
    assert stack.download(status_result["data"]["resultUrl"]).size == (1024, 1024)

    # Seed 001 section 6: the balance.
    balance = requests.get(f"{base}/user/points/consumption/balance", headers=headers).json()
    lots = balance["data"].pop("lots")  # ours: the lots that hold the balance (seed 001 has the three fields)
    assert balance == {"code": 200, "message": "success", "data": {"userId": user, "balance": 70, "expireTime": None}}
    assert [lot["remaining"] for lot in lots] == [70] and lots[0]["expireTime"] is None
    assert stack.records(user, task_no) == [("debit", -30)]
