"""User-facing English messages for provider error codes.

The codes come from DashScope's image out-painting error table (seed 003) plus the
generic codes our own workflow and the OpenAI-compatible provider produce. Messages are
what an end user sees next to a failed (and refunded) task: short, actionable, and never
containing provider internals or secrets.
"""
from __future__ import annotations

_MESSAGES: dict[str, str] = {
    # DashScope image out-painting error table (seed 003)
    "InvalidParameter.JsonPhrase": "The request sent to the image service was malformed. Please try again.",
    "InvalidParameter.FileDownload": (
        "The image could not be downloaded. Check that the image URL is valid and publicly reachable."
    ),
    "InvalidParameter.ImageFormat": (
        "The image could not be read. Please upload a valid JPG, PNG, BMP or WEBP image."
    ),
    "InvalidParameter.ImageContent": (
        "The image was rejected by content moderation. Please use a different image."
    ),
    "InvalidParameter": "One or more parameters are out of the allowed range. Please adjust them and try again.",
    "InvalidParameter.DataInspection": (
        "The resulting image would be too large (over 10 MB). Use a smaller image or a smaller expansion."
    ),
    "InternalError.Algo": "The image service failed while processing your image. Please try again.",
    "InternalError.FileUpload": "The image service could not store the result. Please try again.",
    # other DashScope codes seen on image tasks
    "DataInspectionFailed": "Your prompt or image may contain inappropriate content. Please change it and try again.",
    "IPInfringementSuspect": "Your prompt or image may infringe intellectual property. Please change it and try again.",
    "InternalError": "The image service had an internal error. Please try again.",
    "InvalidApiKey": "The image service is misconfigured. Please try again later.",
    "AccessDenied": "The image service is misconfigured. Please try again later.",
    # throttling
    "Throttling": "The image service is busy right now. Please try again in a moment.",
    "Throttling.RateQuota": "The image service is busy right now. Please try again in a moment.",
    "Throttling.AllocationQuota": "The image service is busy right now. Please try again in a moment.",
    "rate_limit_exceeded": "The image service is busy right now. Please try again in a moment.",
    # OpenAI-compatible codes
    "content_policy_violation": "Your prompt or image was rejected by the content policy. Please change it and try again.",
    "moderation_blocked": "Your prompt or image was rejected by the content policy. Please change it and try again.",
    "invalid_api_key": "The image service is misconfigured. Please try again later.",
    "invalid_value": "One or more parameters are not supported. Please adjust them and try again.",
    "invalid_request_error": "The image service rejected the request. Please adjust it and try again.",
    # task states / our workflow
    "UNKNOWN": "The image service lost track of this task or its result expired. Please submit it again.",
    "EXPIRED": "The result expired before it could be saved. Please submit the task again.",
    "TIMEOUT": "The task took too long and was stopped. Please try again.",
    "CANCELED": "The task was canceled.",
    "PROVIDER_UNAVAILABLE": "The image service is temporarily unavailable. Please try again later.",
    # our workflow: the provider's result could not be stored (the provider's fault; refunded)
    "NoOutput": "The image service finished without producing an image. Please try again.",
    "ResultHostNotAllowed": "The image service returned its result from a location we do not accept. Please try again.",
    "ResultTooLarge": "The result image was larger than we can store. Please try again with a smaller size.",
    "ResultRedirects": "The image service's result could not be fetched. Please try again.",
}

# Aliases: other spellings of the same condition.
_ALIASES = {
    "Expired": "EXPIRED",
    "expired": "EXPIRED",
    "Timeout": "TIMEOUT",
    "timeout": "TIMEOUT",
    "States.Timeout": "TIMEOUT",
    "ProviderThrottled": "Throttling",
    "ProviderUnavailable": "PROVIDER_UNAVAILABLE",
    "Unknown": "UNKNOWN",
    "CANCELLED": "CANCELED",
    "TaskCanceled": "CANCELED",
    "TaskUnknown": "UNKNOWN",
    "ResultExpired": "EXPIRED",
    "ResultAddressNotAllowed": "ResultHostNotAllowed",
    "ResultLocationNotAllowed": "ResultHostNotAllowed",
}

GENERIC_MESSAGE = "The image task failed. Your points have been refunded; please try again."


def user_message(code: str | None) -> str:
    """Our clear English message for `code`, else a generic one: never the provider's own text, which
    can carry request ids, endpoint paths or internals (the workflow logs that for operators).

    Lookup is exact first, then by alias, then by the code's family prefix
    (e.g. "InvalidParameter.Something" -> "InvalidParameter", "Throttling.X" -> "Throttling").
    """
    if code:
        code = code.strip()
        if code in _MESSAGES:
            return _MESSAGES[code]
        if code in _ALIASES:
            return _MESSAGES[_ALIASES[code]]
        family = code.split(".", 1)[0]
        if "." in code and family in _MESSAGES:
            return _MESSAGES[family]
    return GENERIC_MESSAGE

