"""User-facing messages for provider error codes (English msgids; the catalogs translate them).

The codes come from DashScope's image out-painting error table (seed 003) plus the
generic codes our own workflow and the OpenAI-compatible provider produce. Messages are
what an end user sees next to a failed (and refunded) task: short, actionable, and never
containing provider internals or secrets.
"""
from __future__ import annotations

from aigc.core.i18n import Message, _

_MESSAGES: dict[str, Message] = {
    # DashScope image out-painting error table (seed 003)
    "InvalidParameter.JsonPhrase": _("The request sent to the image service was malformed. Please try again."),
    "InvalidParameter.FileDownload": _(
        "The image could not be downloaded. Check that the image URL is valid and publicly reachable."
    ),
    "InvalidParameter.ImageFormat": _(
        "The image could not be read. Please upload a valid JPG, PNG, BMP or WEBP image."
    ),
    "InvalidParameter.ImageContent": _(
        "The image was rejected by content moderation. Please use a different image."
    ),
    "InvalidParameter": _("One or more parameters are out of the allowed range. Please adjust them and try again."),
    "InvalidParameter.DataInspection": _(
        "The resulting image would be too large (over 10 MB). Use a smaller image or a smaller expansion."
    ),
    "InternalError.Algo": _("The image service failed while processing your image. Please try again."),
    "InternalError.FileUpload": _("The image service could not store the result. Please try again."),
    # other DashScope codes seen on image tasks
    "DataInspectionFailed": _("Your prompt or image may contain inappropriate content. Please change it and try again."),
    "IPInfringementSuspect": _("Your prompt or image may infringe intellectual property. Please change it and try again."),
    "InternalError": _("The image service had an internal error. Please try again."),
    "InvalidApiKey": _("The image service is misconfigured. Please try again later."),
    "AccessDenied": _("The image service is misconfigured. Please try again later."),
    # throttling
    "Throttling": _("The image service is busy right now. Please try again in a moment."),
    "Throttling.RateQuota": _("The image service is busy right now. Please try again in a moment."),
    "Throttling.AllocationQuota": _("The image service is busy right now. Please try again in a moment."),
    "rate_limit_exceeded": _("The image service is busy right now. Please try again in a moment."),
    # OpenAI-compatible codes
    "content_policy_violation": _("Your prompt or image was rejected by the content policy. Please change it and try again."),
    "moderation_blocked": _("Your prompt or image was rejected by the content policy. Please change it and try again."),
    "invalid_api_key": _("The image service is misconfigured. Please try again later."),
    "invalid_value": _("One or more parameters are not supported. Please adjust them and try again."),
    "invalid_request_error": _("The image service rejected the request. Please adjust it and try again."),
    # task states / our workflow
    "UNKNOWN": _("The image service lost track of this task or its result expired. Please submit it again."),
    "EXPIRED": _("The result expired before it could be saved. Please submit the task again."),
    "TIMEOUT": _("The task took too long and was stopped. Please try again."),
    "CANCELED": _("The task was canceled."),
    "PROVIDER_UNAVAILABLE": _("The image service is temporarily unavailable. Please try again later."),
    # our workflow: the provider's result could not be stored (the provider's fault; refunded)
    "NoOutput": _("The image service finished without producing an image. Please try again."),
    "ResultHostNotAllowed": _("The image service returned its result from a location we do not accept. Please try again."),
    "ResultTooLarge": _("The result image was larger than we can store. Please try again with a smaller size."),
    "ResultRedirects": _("The image service's result could not be fetched. Please try again."),
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

GENERIC_MESSAGE = _("The image task failed. Your points have been refunded; please try again.")


def user_message(code: str | None) -> Message:
    """Our clear message for `code` (English, and in the catalogs: seed 003's table has the Chinese), else a
    generic one: never the provider's own text, which
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


# Video tasks (DashScope Wan video synthesis): the same codes said of a clip and, for image to video, of its
# first frame, whose rules are DashScope's (JPEG/PNG/BMP/WEBP, each side 360 to 2000 pixels, at most 10 MB).
_VIDEO_MESSAGES: dict[str, str] = {
    "InvalidParameter": (
        "The video service did not accept the request. Check the duration, size or resolution; for image to video "
        "the image must be a JPEG, PNG, BMP or WEBP file of 360 to 2000 pixels on each side and at most 10 MB."
    ),
    "InvalidParameter.DataInspection": (
        "The video service could not use your image: it could not be downloaded in time or its format is not "
        "supported. Use a public JPEG, PNG, BMP or WEBP image of at most 10 MB."
    ),
    "InvalidParameter.FileDownload": (
        "The video service could not download your image. Check that the image URL is valid and publicly reachable."
    ),
    "InvalidParameter.ImageFormat": (
        "The video service could not read your image. Use a JPEG, PNG (without transparency), BMP or WEBP image."
    ),
    "InvalidParameter.ImageResolution": (
        "Your image is too small or too large for a video: each side must be 360 to 2000 pixels."
    ),
    "InvalidURL": "The image URL is not valid. Use a public http(s) URL of the image.",
    "DataInspectionFailed": "Your prompt or image may contain inappropriate content. Please change it and try again.",
    "InternalError.Algo": "The video service failed while making your clip. Please try again.",
    "InternalError": "The video service had an internal error. Please try again.",
    "NoOutput": "The video service finished without producing a video. Please try again.",
    "VideoTooLarge": (
        "The video was larger than we can store, so it was not saved. Try a shorter duration or a lower resolution."
    ),
    "ResultTooLarge": (
        "The video was larger than we can store, so it was not saved. Try a shorter duration or a lower resolution."
    ),
    "ResultCorrupt": "The video service returned a file that is not a playable video. Please try again.",
    "UNKNOWN": "The video service lost track of this task or its result expired. Please submit it again.",
    "TaskUnknown": "The video service lost track of this task or its result expired. Please submit it again.",
}
VIDEO_TASK_TYPES = ("text_to_video", "image_to_video")


def task_message(code: str | None, task_type: str | None = None):
    """`user_message`, in the video service's words for a video task (a code of seed 003's image table means
    something else of a clip: InvalidParameter.DataInspection is the first frame, not a too large result)."""
    if task_type in VIDEO_TASK_TYPES and code:
        code = code.strip()
        if code in _VIDEO_MESSAGES:
            return _VIDEO_MESSAGES[code]
        family = code.split(".", 1)[0]
        if "." in code and family in _VIDEO_MESSAGES and family != "InvalidParameter":
            return _VIDEO_MESSAGES[family]
        if family == "InvalidParameter":
            return _VIDEO_MESSAGES["InvalidParameter"]
    return user_message(code)

