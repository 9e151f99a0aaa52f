"""Hostile input at submit, over real HTTP: each gets a 400 naming the field, never a 5xx, and
changes nothing (balance, ledger and task list as before). The local stack allows plain private
hosts (its simulator lives on 127.0.0.1); everything below is refused there too. Private hosts
written plainly are refused in AWS: tests/workflow/test_api.py and tests/unit/test_netcheck.py."""
from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import new_user

SAMPLE = "SAMPLE"  # replaced by a simulator image URL


def outpainting(**parameters) -> dict:
    return {"modelName": "image-out-painting", "imageUrl": SAMPLE, "parameters": parameters or {"xScale": 2}}


def with_image(url) -> dict:
    return {"modelName": "image-out-painting", "imageUrl": url, "parameters": {"xScale": 2}}


DEEP = 5000
HOSTILE: dict[str, tuple[object, str]] = {
    # the body itself
    "json nested 5000 levels": ('{"modelName": "image-out-painting", "parameters": {"x": ' + "[" * DEEP + "]" * DEEP
                                + "}}", "body"),
    "json nested in a string field": ('{"modelName": ' + "[" * DEEP + "]" * DEEP + "}", "body"),
    "body over 64 KB": ({"modelName": "wanx-v1", "prompt": "x" * 70_000}, "body"),
    "NaN": ('{"modelName": "image-out-painting", "parameters": {"xScale": NaN}}', "body"),
    "integer of 5000 digits": ('{"modelName": "image-out-painting", "parameters": {"leftOffset": 1' + "0" * 5000
                               + "}}", "body"),
    "not an object": ("[1, 2, 3]", "body"),
    # numbers DynamoDB cannot store or out of range
    "leftOffset 10^200": (outpainting(leftOffset=10**200), "parameters.leftOffset"),
    "leftOffset 10**30": (outpainting(leftOffset=10**30), "parameters.leftOffset"),
    "strength 1e-140": ({"modelName": "wanx2.1-imageedit", "prompt": "make it blue", "imageUrl": SAMPLE,
                         "parameters": {"strength": 1e-140}}, "parameters.strength"),
    "xScale 1e308 * 10": ('{"modelName": "image-out-painting", "imageUrl": "' + SAMPLE + '", "parameters": '
                          '{"xScale": 1e309}}', "parameters.xScale"),
    "seed 2^63": ({"modelName": "wanx-v1", "prompt": "cat", "parameters": {"seed": 2**63}}, "parameters.seed"),
    # strict types
    "angle true": (outpainting(angle=True, xScale=2), "parameters.angle"),
    "angle '2'": (outpainting(angle="2", xScale=2), "parameters.angle"),
    "angle 2.0": (outpainting(angle=2.0, xScale=2), "parameters.angle"),
    "n 2.0": ({"modelName": "wanx-v1", "prompt": "cat", "parameters": {"n": 2.0}}, "parameters.n"),
    "n '2'": ({"modelName": "wanx-v1", "prompt": "cat", "parameters": {"n": "2"}}, "parameters.n"),
    "xScale '2'": (outpainting(xScale="2"), "parameters.xScale"),
    "bestQuality 1": (outpainting(xScale=2, bestQuality=1), "parameters.bestQuality"),
    "modelName a number": ({"modelName": 5, "prompt": "cat"}, "modelName"),
    "prompt a list": ({"modelName": "wanx-v1", "prompt": ["cat"]}, "prompt"),
    "prompt with a NUL": ({"modelName": "wanx-v1", "prompt": "cat\x00"}, "prompt"),
    "unknown field": ({"modelName": "wanx-v1", "prompt": "cat", "userId": "someone-else"}, "userId"),
    # image URLs: userinfo, control characters, metadata, link-local, encoded loopback
    "userinfo": (with_image("http://user:pass@example.com/a.png"), "imageUrl"),
    "userinfo hiding the host": (with_image("http://example.com@169.254.169.254/a.png"), "imageUrl"),
    "CR/LF": (with_image("http://example.com/a.png\r\nX-Injected: 1"), "imageUrl"),
    "metadata IPv4": (with_image("http://169.254.169.254/latest/meta-data/"), "imageUrl"),
    "metadata IPv6": (with_image("http://[fd00:ec2::254]/latest/meta-data/"), "imageUrl"),
    "loopback in hex": (with_image("http://0x7f000001/a.png"), "imageUrl"),
    "loopback as an integer": (with_image("http://2130706433/a.png"), "imageUrl"),
    "loopback in octal": (with_image("http://0177.0.0.1/a.png"), "imageUrl"),
    "loopback mapped into IPv6": (with_image("http://[::ffff:127.0.0.1]/a.png"), "imageUrl"),
    "link-local IPv6": (with_image("http://[fe80::1]/a.png"), "imageUrl"),
    "not http(s)": (with_image("file:///etc/passwd"), "imageUrl"),
    "hostile URL in a JSON-array string": ({"modelName": "sc_soraimg_img2img_1x1", "prompt": "cat",
                                            "imageUrl": json.dumps([SAMPLE, "http://169.254.169.254/x"])}, "imageUrl"),
    "hostile URL in an array": ({"modelName": "sc_soraimg_img2img_1x1", "prompt": "cat",
                                 "imageUrl": [SAMPLE, "http://[::ffff:a9fe:a9fe]/x"]}, "imageUrl"),
}


def _unchanged(stack, user: str, balance: int) -> None:
    assert stack.balance(user) == balance
    assert stack.records(user) == [("grant", balance)]
    assert stack.task_count(user) == 0


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_submit_is_400_naming_the_field_and_charges_nothing(stack, case):
    body, field = HOSTILE[case]
    user = new_user("hostile")
    stack.grant(user, 100)
    sample = stack.sample_url()
    if isinstance(body, str):
        data = body.replace(SAMPLE, sample).encode()
    else:
        data = json.dumps(body).replace(SAMPLE, sample).encode()
    response = stack.call("POST", "/user/ai/tasks/submit", user=user, data=data,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400, (case, response.status_code, response.text[:300])
    answer = response.json()
    assert answer["code"] == 400 and answer["data"] is None
    assert answer["message"].startswith(field + ":"), (case, answer["message"])
    _unchanged(stack, user, 100)


UNSAFE_SUBJECTS = {
    "slash": "{victim}/x",
    "dot-dot": "../{victim}",
    "dot-dot inside": "{victim}/../{victim}",
    "newline": "{victim}\n",
    "too long": "{victim}" + "x" * 200,
}


@pytest.mark.parametrize("case", list(UNSAFE_SUBJECTS))
def test_a_token_whose_sub_is_unsafe_in_a_key_is_refused_before_anything_is_written(stack, case):
    victim = new_user("victim")
    stack.grant(victim, 100)
    token = stack.token(UNSAFE_SUBJECTS[case].format(victim=victim))
    calls = [
        ("POST", "/user/uploads", {"fileName": "a.png", "contentType": "image/png"}),
        ("POST", "/user/ai/tasks/submit", {"modelName": "wanx-v1", "prompt": "cat"}),
        ("GET", "/user/points/consumption/balance", None),
    ]
    for method, path, body in calls:
        response = stack.call(method, path, token=token, json=body)
        assert response.status_code == 403, (case, path, response.text)
        assert "sub" in response.json()["message"], response.text
    _unchanged(stack, victim, 100)
