"""The local S3's presigned POST check (local/s3_post_policy.py) against forms botocore signs, as S3
answers them: the signature, the expiration, each kind of condition, extra fields and the size range."""
from __future__ import annotations

import base64
import datetime
import json

import boto3
import pytest
from botocore.config import Config

from local.s3_post_policy import check

CREDENTIALS = {"local-key": "local-secret"}
BUCKET = "aigc-results-local"
KEY = "uploads/alice/abc-photo.png"


def _form(version: str = "s3v4", expires: int = 900, conditions: list | None = None, fields: dict | None = None,
          secret: str = "local-secret", key: str = KEY) -> dict:
    """What the API hands out (aigc storage.presigned_upload's shape), signed by botocore itself."""
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="local-key", aws_secret_access_key=secret,
                          endpoint_url="http://127.0.0.1:1", config=Config(signature_version=version))
    fields = {"Content-Type": "image/png", "x-amz-meta-x-scale": "1.5"} if fields is None else fields
    if conditions is None:
        conditions = [{"Content-Type": "image/png"}, ["content-length-range", 1, 100], {"x-amz-meta-x-scale": "1.5"}]
    return dict(client.generate_presigned_post(BUCKET, key, Fields=fields, Conditions=conditions,
                                               ExpiresIn=expires)["fields"])


def _check(form: dict, size: int = 10, bucket: str = BUCKET, now=None):
    return check(form, bucket, size, credentials=CREDENTIALS, now=now)


@pytest.mark.parametrize("version", ["s3v4", "s3"])
def test_a_form_as_signed_is_accepted(version):
    assert _check(_form(version)) is None


@pytest.mark.parametrize("version", ["s3v4", "s3"])
def test_another_users_key_is_refused_with_the_condition_that_failed(version):
    form = _form(version) | {"key": "uploads/bob/x.png"}
    refusal = _check(form)
    assert (refusal.status, refusal.code) == (403, "AccessDenied")
    assert refusal.message == f'Invalid according to Policy: Policy Condition failed: ["eq", "$key", "{KEY}"]'
    status, headers, body = refusal.response()
    assert status == 403 and headers["content-type"] == "application/xml"
    assert b"<Code>AccessDenied</Code>" in body and b"Policy Condition failed" in body


def test_an_expired_form_is_refused():
    form = _form(expires=60)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=61)
    refusal = _check(form, now=later)
    assert (refusal.status, refusal.code, refusal.message) == (
        403, "AccessDenied", "Invalid according to Policy: Policy expired.")


def test_sizes_outside_the_range_are_refused_with_the_sizes():
    too_large = _check(_form(), size=101)
    assert (too_large.status, too_large.code) == (400, "EntityTooLarge")
    assert too_large.details == {"ProposedSize": 101, "MaxSizeAllowed": 100}
    assert b"<MaxSizeAllowed>100</MaxSizeAllowed>" in too_large.response()[2]
    too_small = _check(_form(), size=0)
    assert (too_small.status, too_small.code, too_small.details) == (
        400, "EntityTooSmall", {"ProposedSize": 0, "MinSizeAllowed": 1})
    assert _check(_form(), size=100) is None and _check(_form(), size=1) is None


@pytest.mark.parametrize("version", ["s3v4", "s3"])
def test_a_changed_policy_or_a_wrong_secret_fails_the_signature(version):
    form = _form(version)
    policy = json.loads(base64.b64decode(form["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if not (isinstance(c, dict) and "key" in c)]
    tampered = form | {"policy": base64.b64encode(json.dumps(policy).encode()).decode()}
    assert (_check(tampered).status, _check(tampered).code) == (403, "SignatureDoesNotMatch")
    forged = _form(version, secret="guessed")
    assert _check(forged).code == "SignatureDoesNotMatch"


def test_an_unknown_access_key_or_no_policy_is_refused():
    assert check(_form(), BUCKET, 10, credentials={"other": "local-secret"}).code == "InvalidAccessKeyId"
    unsigned = {k: v for k, v in _form().items() if k not in ("policy", "x-amz-signature")}
    assert (_check(unsigned).status, _check(unsigned).code) == (403, "AccessDenied")
    assert _check(_form() | {"policy": "not base64 json"}).code == "InvalidPolicyDocument"


def test_a_field_the_policy_does_not_name_is_refused_but_x_ignore_is_not():
    refusal = _check(_form() | {"x-amz-meta-y-scale": "3"})
    assert refusal.message == "Invalid according to Policy: Extra input fields: x-amz-meta-y-scale"
    assert _check(_form() | {"x-ignore-note": "anything"}) is None


def test_a_changed_field_fails_its_exact_match_condition():
    refusal = _check(_form() | {"x-amz-meta-x-scale": "3"})
    assert refusal.message == ('Invalid according to Policy: Policy Condition failed: '
                               '["eq", "$x-amz-meta-x-scale", "1.5"]')
    assert _check(_form() | {"Content-Type": "text/html"}).code == "AccessDenied"


def test_starts_with_and_eq_conditions():
    conditions = [["starts-with", "$Content-Type", "image/"], ["eq", "$x-amz-meta-x-scale", "1.5"]]
    form = _form(conditions=conditions, key="uploads/alice/${filename}")  # botocore: starts-with $key
    assert _check(form) is None
    assert _check(form | {"Content-Type": "image/jpeg"}) is None
    assert _check(form | {"key": "uploads/alice/other.png"}) is None
    refused = _check(form | {"key": "uploads/bob/x.png"})
    assert refused.code == "AccessDenied"
    assert _check(form | {"Content-Type": "image/png,text/html"}).code == "AccessDenied"


def test_the_bucket_condition_is_the_bucket_of_the_url():
    assert _check(_form(), bucket="someone-elses-bucket").message.startswith(
        'Invalid according to Policy: Policy Condition failed: ["eq", "$bucket", ')
