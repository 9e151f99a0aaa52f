"""Presigned POST uploads checked as S3 checks them (moto stores whatever form it is sent).

A browser-style upload (a multipart form POSTed to the bucket: key, fields, policy, signature, file)
is accepted by S3 only when, in this order:

1. the form carries a policy (without one the request is anonymous, and the bucket is private):
   else 403 AccessDenied; a policy that is not base64 JSON with `expiration` and `conditions` is a
   400 InvalidPolicyDocument;
2. the policy is signed with the credentials the form names, SigV4 (`x-amz-algorithm`
   AWS4-HMAC-SHA256, `x-amz-credential`, `x-amz-signature`: hex HMAC-SHA256 of the base64 policy
   with the key derived for the credential's date, region and service) or SigV2 (`AWSAccessKeyId`,
   `signature`: base64 HMAC-SHA1): else 403 InvalidAccessKeyId or SignatureDoesNotMatch;
3. its `expiration` has not passed: else 403 AccessDenied "Invalid according to Policy: Policy expired.";
4. every condition holds: `{"field": value}` and `["eq", "$field", value]` exactly,
   `["starts-with", "$field", prefix]` (each of a comma-separated Content-Type), `bucket` against the
   bucket of the URL: else 403 AccessDenied "Invalid according to Policy: Policy Condition failed: ...";
5. every form field is named by a condition (except policy, the signature fields, file and
   `x-ignore-*`): else 403 AccessDenied "Invalid according to Policy: Extra input fields: ...";
6. the file's size is within `["content-length-range", min, max]`: else 400 EntityTooSmall or
   EntityTooLarge (with ProposedSize and MinSizeAllowed / MaxSizeAllowed).

The credentials are the local stack's own (this process's AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY: the API function presigns with them). `install()` puts the check in front of
moto's form upload (`S3Response._bucket_response_post`, a seam registered in local/seams.py).
"""
from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

from local import seams

SEAM = "moto.s3.responses:S3Response._bucket_response_post"
# Form fields no condition has to name (S3's POST policy rules).
_UNCOVERED = {"policy", "file", "x-amz-signature", "signature", "awsaccesskeyid"}


@dataclass
class Refusal:
    """S3's error answer: status, code, message and the extra elements some codes carry."""

    status: int
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        extra = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in self.details.items())
        request_id = uuid.uuid4().hex[:16].upper()
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>{extra}"
                f"<RequestId>{request_id}</RequestId><HostId>local</HostId></Error>")
        return self.status, {"content-type": "application/xml", "x-amz-request-id": request_id}, body.encode()


def _denied(message: str) -> Refusal:
    return Refusal(403, "AccessDenied", message)


def _policy_failed(reason: str) -> Refusal:
    return _denied(f"Invalid according to Policy: {reason}")


def local_credentials() -> dict[str, str]:
    """Access key id -> secret: the credentials of this process (the local stack's dummy ones)."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    return {key: secret} if key and secret else {}


def _hmac(key: bytes, text: str, digest=hashlib.sha256) -> bytes:
    return hmac.new(key, text.encode("utf-8"), digest).digest()


def _check_signature(form: Mapping[str, str], policy: str, credentials: Mapping[str, str]) -> Refusal | None:
    mismatch = Refusal(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                       "signature you provided. Check your key and signing method.")
    unknown = Refusal(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
    if "x-amz-algorithm" in form or "x-amz-signature" in form:
        if form.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
            return Refusal(400, "InvalidArgument", "POST requires x-amz-algorithm AWS4-HMAC-SHA256")
        parts = form.get("x-amz-credential", "").split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            return Refusal(400, "InvalidArgument", "Invalid x-amz-credential")
        key_id, date, region, service, _ = parts
        secret = credentials.get(key_id)
        if secret is None:
            return unknown
        signing_key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), date), region), service), "aws4_request")
        expected = hmac.new(signing_key, policy.encode(), hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected, form.get("x-amz-signature", "")) else mismatch
    if "awsaccesskeyid" in form or "signature" in form:
        secret = credentials.get(form.get("awsaccesskeyid", ""))
        if secret is None:
            return unknown
        expected = base64.b64encode(_hmac(secret.encode(), policy, hashlib.sha1)).decode()
        return None if hmac.compare_digest(expected, form.get("signature", "")) else mismatch
    return _denied("Access Denied")  # a policy nobody signed


def _parse_time(text: str) -> datetime.datetime:
    value = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def _matches(operation: str, field_name: str, actual: str, expected: str) -> bool:
    if operation == "eq":
        return actual == expected
    if field_name == "content-type":  # each of a comma-separated list must start with the prefix
        return all(part.strip().startswith(expected) for part in actual.split(","))
    return actual.startswith(expected)


def _conditions(conditions: list, form: Mapping[str, str], bucket: str) -> tuple[Refusal | None, set, tuple | None]:
    """(the first failed condition's refusal, the fields named, the content-length-range)."""
    named: set[str] = set()
    size_range = None
    for condition in conditions:
        if isinstance(condition, dict) and len(condition) == 1:
            [(name, expected)] = condition.items()
            operation, shown = "eq", ["eq", f"${name}", expected]
        elif isinstance(condition, list) and len(condition) == 3 and str(condition[0]).lower() == "content-length-range":
            try:
                size_range = (int(condition[1]), int(condition[2]))
            except (TypeError, ValueError):
                return Refusal(400, "InvalidPolicyDocument", "Invalid Policy: Invalid content-length-range."), named, None
            continue
        elif (isinstance(condition, list) and len(condition) == 3 and str(condition[0]).lower() in ("eq", "starts-with")
              and str(condition[1]).startswith("$")):
            operation, name, expected = str(condition[0]).lower(), str(condition[1])[1:], condition[2]
            shown = condition
        else:
            return (Refusal(400, "InvalidPolicyDocument", f"Invalid Policy: Invalid Condition: {json.dumps(condition)}"),
                    named, None)
        field_name = name.lower()
        named.add(field_name)
        actual = bucket if field_name == "bucket" else form.get(field_name, "")
        if not _matches(operation, field_name, actual, str(expected)):
            return _policy_failed(f"Policy Condition failed: {json.dumps(shown)}"), named, None
    return None, named, size_range


def check(form: Mapping[str, str], bucket: str, size: int, *, credentials: Mapping[str, str] | None = None,
          now: datetime.datetime | None = None) -> Refusal | None:
    """None when S3 would store the upload; else its refusal. `form`: the text fields (any case)."""
    form = {str(name).lower(): str(value) for name, value in form.items()}
    credentials = local_credentials() if credentials is None else credentials
    policy_b64 = form.get("policy")
    if not policy_b64:
        return _denied("Access Denied")
    try:
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
        expiration = _parse_time(policy["expiration"])
        conditions = policy["conditions"]
        assert isinstance(conditions, list)
    except (binascii.Error, ValueError, KeyError, TypeError, AssertionError):
        return Refusal(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.")
    refusal = _check_signature(form, policy_b64, credentials)
    if refusal is not None:
        return refusal
    if expiration <= (now or datetime.datetime.now(datetime.timezone.utc)):
        return _policy_failed("Policy expired.")
    refusal, named, size_range = _conditions(conditions, form, bucket)
    if refusal is not None:
        return refusal
    extra = sorted(name for name in form if name not in named and name not in _UNCOVERED
                   and not name.startswith("x-ignore-"))
    if extra:
        return _policy_failed(f"Extra input fields: {', '.join(extra)}")
    if size_range is not None:
        low, high = size_range
        if size < low:
            return Refusal(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size",
                           {"ProposedSize": size, "MinSizeAllowed": low})
        if size > high:
            return Refusal(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                           {"ProposedSize": size, "MaxSizeAllowed": high})
    return None


def install() -> Callable[[], None]:
    """Check every form upload to moto's S3 before moto stores it; returns the undo."""
    original = seams.resolve(SEAM)

    def _bucket_response_post(self, request, bucket_name: str):
        form = self.form_data
        deleting = "delete" in parse_qs(urlparse(self._get_path(request)).query, keep_blank_values=True)
        if not deleting and (form or getattr(request, "files", None)):
            body = self.body if isinstance(self.body, (bytes, str)) else b""
            size = len(body.encode() if isinstance(body, str) else body)
            refusal = check({name: form.get(name) for name in form.keys()}, bucket_name, size)
            if refusal is not None:
                return refusal.response()
        return original(self, request, bucket_name)

    return seams.patch(SEAM, _bucket_response_post)
