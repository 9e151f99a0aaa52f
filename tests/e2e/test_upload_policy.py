"""The local S3 checks a presigned POST as S3 does (local/s3_post_policy.py): a form whose key was moved
under another user's prefix, an expired form and a file over the size limit are refused, stored
nowhere, and so make no task and charge nobody; the form as the API signed it is stored (204)."""
from __future__ import annotations

import time

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from tests.e2e.conftest import new_user

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde\x00"
       b"\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82")


def _s3(stack, **credentials):
    credentials = credentials or {"aws_access_key_id": "x", "aws_secret_access_key": "x"}
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{stack.moto_port}", region_name="us-east-1",
                        **credentials)


def _upload_form(stack, user: str) -> dict:
    response = stack.call("POST", "/user/uploads", user=user, json={"fileName": "me.png", "contentType": "image/png"})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _post(url: str, fields: dict, content: bytes) -> requests.Response:
    return requests.post(url, data=fields, files={"file": ("me.png", content, "image/png")}, timeout=30)


def _stored(stack, bucket: str, key: str) -> bool:
    try:
        _s3(stack).head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def _assert_nothing_happened(stack, users: dict[str, int], bucket: str, key: str) -> None:
    assert not _stored(stack, bucket, key)
    time.sleep(1.0)  # an S3 notification reaches the upload function 0.2 s after a write
    for user, points in users.items():
        assert stack.task_count(user) == 0, user
        assert stack.balance(user) == points, user


@pytest.fixture
def alice_and_bob(stack):
    alice, bob = new_user("alice"), new_user("bob")
    stack.grant(alice, 50)
    stack.grant(bob, 50)
    return alice, bob


def test_a_form_moved_to_another_users_prefix_is_refused_and_charges_nobody(stack, alice_and_bob):
    alice, bob = alice_and_bob
    upload = _upload_form(stack, alice)
    bucket = upload["url"].rstrip("/").rsplit("/", 1)[1]
    stolen = f"uploads/{bob}/x.png"
    posted = _post(upload["url"], upload["fields"] | {"key": stolen}, PNG)
    assert posted.status_code == 403, posted.text
    assert "<Code>AccessDenied</Code>" in posted.text and "Policy Condition failed" in posted.text
    assert f'"$key", "{upload["key"]}"' in posted.text
    _assert_nothing_happened(stack, {alice: 50, bob: 50}, bucket, stolen)


def test_an_expired_form_is_refused(stack, alice_and_bob):
    alice, _ = alice_and_bob
    key = f"uploads/{alice}/late.png"
    # Signed as the API signs, with the local stack's dummy credentials, but already expired.
    signer = _s3(stack, aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="testing")
    form = signer.generate_presigned_post(_bucket_of(stack, alice), key, Fields={"Content-Type": "image/png"},
                                          Conditions=[{"Content-Type": "image/png"},
                                                      ["content-length-range", 1, 1024]], ExpiresIn=-5)
    posted = _post(form["url"], form["fields"], PNG)
    assert posted.status_code == 403, posted.text
    assert "<Code>AccessDenied</Code>" in posted.text and "Policy expired" in posted.text
    _assert_nothing_happened(stack, {alice: 50}, _bucket_of(stack, alice), key)


def test_a_file_over_the_limit_is_refused(stack, alice_and_bob):
    alice, _ = alice_and_bob
    upload = _upload_form(stack, alice)
    posted = _post(upload["url"], upload["fields"], PNG + b"\0" * (upload["maxBytes"] + 1 - len(PNG)))
    assert posted.status_code == 400, posted.text
    assert "<Code>EntityTooLarge</Code>" in posted.text
    assert f"<MaxSizeAllowed>{upload['maxBytes']}</MaxSizeAllowed>" in posted.text
    _assert_nothing_happened(stack, {alice: 50}, _bucket_of(stack, alice), upload["key"])


def test_the_form_as_signed_is_stored(stack, alice_and_bob):
    alice, _ = alice_and_bob
    upload = _upload_form(stack, alice)
    posted = _post(upload["url"], upload["fields"], PNG)
    assert posted.status_code == 204, posted.text
    assert _stored(stack, _bucket_of(stack, alice), upload["key"])


def _bucket_of(stack, user: str) -> str:
    return _upload_form(stack, user)["url"].rstrip("/").rsplit("/", 1)[1]
