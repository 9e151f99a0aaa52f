"""Images dropped under uploads/<userId>/ become outpainting tasks charged to that user.

One upload key, one task. The task number is derived from the bucket and the key alone and the
task record is written with a "must not exist" condition, so however many events S3 delivers for
an object (at least once; the local S3 notifies a multipart upload twice), whatever their times,
one task is made and charged once. An upload URL (a presigned POST, reusable for its 15 minutes)
takes one file: the first object that reaches the trigger claims the key (a conditional write
naming the object's version, or its sequencer or ETag in an unversioned bucket); a second object
under that key becomes one `Rejected.UrlReused` record (charged nothing), and any further one
only a log line. Anything that cannot become a task leaves a rejected (never charged) task record.
"""
from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
import uuid
from urllib.parse import unquote_plus

from pydantic import ValidationError
from pydantic.alias_generators import to_snake

from aigc.api.parameters import OutpaintingParameters
from aigc.api.schemas import MAX_USER_ID_CHARS, SAFE_USER_ID, SubmitTaskRequest, describe_validation_error
from aigc.core.catalog import get_model
from aigc.core.config import get_settings
from aigc.core.errors import AppError, BadRequest, Conflict, Forbidden, ServiceUnavailable
from aigc.core.i18n import Message, _
from aigc.core.observability import count, logger
from aigc.domain import points, tasks
from aigc.flows.submission import charge_and_start, prepare_task
from aigc.store import storage
from aigc.store.db import PointsItem
from aigc.store.dynamo import conditional, get_or_none

USER_ID = re.compile(SAFE_USER_ID)  # the same rule as the API's token subjects
IMAGE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}
SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
UPLOAD_URL_SECONDS = 900


# A claim outlives every event of its key: the URL's 15 minutes, S3's delivery delays and Lambda's
# asynchronous retries (6 h). Past it a reused URL's object is only a duplicate: still never charged.
CLAIM_SECONDS = 7 * 24 * 3600


def _upload_task_no(bucket: str, key: str) -> str:
    """The one task an upload key can become: the same for every event and every object of the key."""
    return f"TASK-UPLOAD-{hashlib.sha256(f'{bucket}/{key}'.encode()).hexdigest()[:24]}"


def _reuse_task_no(task_no: str) -> str:
    """The one record a reused upload URL gets, however many more objects it receives."""
    return f"{task_no}-REUSED"


def _claim_key(user_id: str, task_no: str, object_id: str) -> str | None:
    """Claim the upload key for this object; None if it is ours (also again: a repeated event),
    else the object id that claimed it first. An item of the user's partition in the points table,
    `UPLOAD#<task number>` (expiring), whose `ref` names the object."""
    claim = PointsItem(user_id, f"UPLOAD#{task_no}", ref=object_id, expires_at=int(time.time()) + CLAIM_SECONDS)
    if conditional(lambda: claim.save(condition=PointsItem.entry.does_not_exist() | (PointsItem.ref == object_id))):
        return None
    held = get_or_none(PointsItem, user_id, f"UPLOAD#{task_no}")
    return held.ref if held is not None else "another object"


def _metadata_parameters(metadata: dict) -> dict:
    """x-amz-meta-output-ratio: 16:9  ->  {"output_ratio": "16:9"} (numbers and booleans parsed)."""
    parameters = {}
    for name, raw in metadata.items():
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            value = raw
        parameters[to_snake(name.lower().replace("-", "_"))] = value
    return parameters


MIN_SIDE, MAX_SIDE = 32, 10000
# Decoding is only a check here: above this many pixels a PNG/WebP is checked for structure only.
DECODE_CHECK_PIXELS = 40_000_000


def _check_decodes(image) -> None:
    """Decode enough of the image to find truncation or corruption, in bounded memory."""
    width, height = image.size
    if image.format == "JPEG":
        image.draft("RGB", (max(1, width // 8), max(1, height // 8)))  # DCT scaling: 1/8 of the pixels
        image.load()
    elif image.format == "PNG" or width * height > DECODE_CHECK_PIXELS:
        image.verify()  # every chunk's CRC, through IEND
    else:
        image.load()


def _image_problem(image_file) -> tuple[str, Message] | None:
    """(errorCode, reason) when the file is not an image we can outpaint, else None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image_file) as image:
            width, height = image.size
            if image.format not in ("PNG", "JPEG", "WEBP"):
                return "Rejected.ImageFormat", _("{format} images are not supported (PNG, JPEG or WebP)",
                                                 format=image.format)
            if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE:
                return ("Rejected.ImageSize",
                        _("the image is {width}x{height}; sides must be between {min} and {max} pixels",
                          width=width, height=height, min=MIN_SIDE, max=MAX_SIDE))
            _check_decodes(image)
    except Image.DecompressionBombError:
        return ("Rejected.ImageSize", _("the image claims more than {pixels} pixels; "
                                        "sides must be between {min} and {max} pixels",
                                        pixels=Image.MAX_IMAGE_PIXELS * 2, min=MIN_SIDE, max=MAX_SIDE))
    except UnidentifiedImageError:
        return "Rejected.ImageFormat", _("the file is not a readable PNG, JPEG or WebP image")
    except Exception as error:
        return "Rejected.CorruptImage", _("the image is damaged or truncated ({error})",
                                          error=f"{type(error).__name__}: {str(error)[:120]}")
    return None


def handle_object(bucket: str, raw_key: str, *, object_id: str,  # noqa: C901 - the checks in order
                  version_id: str | None = None) -> str:
    """Turn one uploaded object into a task; returns what happened (for logs and tests).

    `object_id` names the object version the event is about (its version id, or its sequencer or
    ETag): every event of that object is the same upload, another one is a reuse of the key. With
    `version_id` (a versioned bucket) everything reads that version: the checks, and the task's
    input, so an object written to the key later is never what the task uses.
    Whatever stops an upload from becoming a task leaves a Rejected.* task in the user's list
    (charged nothing), a log line with the key and the UploadsRejected metric. Only our own
    infrastructure failing (S3, DynamoDB) raises, for the asynchronous retry and the DLQ.
    """
    settings = get_settings()
    key = unquote_plus(raw_key)
    logger.append_keys(s3_key=key)
    if not settings.uploads_enabled:
        logger.info("upload trigger is disabled; ignoring upload")
        return "disabled"
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != "uploads" or len(parts[1]) > MAX_USER_ID_CHARS or not USER_ID.match(parts[1]):
        # No user to show a task to: the log line and the metric are the record.
        logger.error("upload rejected: the key names no valid user (uploads/<userId>/...)",
                     extra={"s3_key": key, "bucket": bucket, "error_code": "Rejected.UnknownUser"})
        count("UploadsRejected")
        return "rejected"
    user_id = parts[1]
    model = get_model(settings.upload_model)
    task_no = _upload_task_no(bucket, key)
    logger.append_keys(task_no=task_no, user_id=user_id)
    image_ref = storage.object_ref(bucket, key, version_id)

    def reject(code: str, message: Message, number: str = task_no) -> str:
        record = tasks.rejected_task(task_no=number, user_id=user_id, model=model, source="upload",
                                     image_urls=[image_ref], error_code=code, error_message=message)
        if points.save_uncharged_task(record):
            logger.warning("upload rejected", extra={"s3_key": key, "error_code": code, "reason": str(message)})
            count("UploadsRejected")
            return "rejected"
        return "duplicate"

    claimed_by = _claim_key(user_id, task_no, object_id)
    if claimed_by is not None:  # another object took this key (its URL) first
        logger.append_keys(object_id=object_id, claimed_by=claimed_by)
        outcome = reject("Rejected.UrlReused",
                         _("this upload URL was already used (task {task_no}); each upload URL takes one file: "
                           "ask for a new one (POST /user/uploads) for every image", task_no=task_no),
                         _reuse_task_no(task_no))
        if outcome == "duplicate":  # its one record exists: a third object, or the second one's event again
            logger.info("upload URL reused again; its rejection is already recorded")
            count("UploadsDuplicate")
        return outcome
    if tasks.exists(task_no):
        logger.info("duplicate upload event; the task already exists")
        count("UploadsDuplicate")
        return "duplicate"

    info = storage.object_metadata(bucket, key, version_id)  # its size, not the event's: this is what is read
    if info is None:
        return reject("Rejected.ObjectMissing", _("the uploaded file was deleted before it could be read"))
    if info["size"] == 0:
        return reject("Rejected.EmptyFile", _("the uploaded file is empty"))
    if info["size"] > settings.upload_max_bytes:
        return reject("Rejected.TooLarge", _("the upload is {size} bytes; the limit is {limit}",
                                             size=info["size"], limit=settings.upload_max_bytes))
    if not points.has_account(user_id):
        return reject("Rejected.UnknownUser", _("user {user_id} has no points account", user_id=user_id))
    with tempfile.TemporaryFile() as image_file:
        storage.download_to(bucket, key, image_file, version_id)
        image_file.seek(0)
        problem = _image_problem(image_file)
    if problem:
        return reject(*problem)
    try:
        defaults = {to_snake(name): value for name, value in settings.upload_default_parameters.items()}
        parameters = {**defaults, **_metadata_parameters(info["metadata"])}
        request = SubmitTaskRequest(modelName=model.name, parameters=parameters)
        task = prepare_task(user_id, request, source="upload", image_urls=[image_ref], task_no=task_no)
    except ValidationError as error:
        return reject("Rejected.BadRequest", describe_validation_error(error))
    except AppError as error:  # bad metadata parameters
        return reject(f"Rejected.{type(error).__name__}", error.text)
    try:
        charge_and_start(task, rate_limit_per_minute=0)
    except Conflict:
        return "duplicate"
    except ServiceUnavailable:  # debited, could not start, refunded at once: the task says so
        return "refunded"
    except AppError as error:  # not enough points
        return reject(f"Rejected.{type(error).__name__}", error.text)
    count("UploadsAccepted")
    return "accepted"


def handle_s3_event(event: dict) -> list[str]:
    from aws_lambda_powertools.utilities.data_classes import S3Event

    outcomes = []
    for record in S3Event(event).records:
        obj = record.s3.get_object
        # The object's identity, never the event's time. The bucket is versioned (template.yaml), so
        # S3 names the version (the local stack's S3 too, local/s3_events.py); the sequencer orders writes
        # of an unversioned key; else the ETag (one multipart upload notified twice has one ETag).
        object_id = obj.version_id or obj.get("sequencer") or obj.etag or ""
        outcomes.append(handle_object(record.s3.bucket.name, obj.key, object_id=object_id,
                                      version_id=obj.version_id or None))
    return outcomes


def create_upload_url(user_id: str, file_name: str, content_type: str, parameters: dict | None) -> dict:
    """A presigned POST under the caller's own prefix; metadata carries the outpainting parameters."""
    settings = get_settings()
    if not settings.uploads_enabled:
        raise Forbidden(_("uploads are turned off for this deployment"))
    if content_type not in IMAGE_TYPES:
        raise BadRequest(_("contentType: must be one of {types}", types=", ".join(IMAGE_TYPES)))
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", file_name.rsplit("/", 1)[-1])[:100] or "image"
    if not stem.lower().endswith(SUFFIXES):
        stem += IMAGE_TYPES[content_type]
    stem = stem[: stem.rfind(".")] + stem[stem.rfind("."):].lower()
    metadata = {}
    if parameters:
        try:
            validated = OutpaintingParameters.model_validate(parameters)
        except ValidationError as error:
            raise BadRequest(describe_validation_error(error, "parameters")) from None
        metadata = {name.replace("_", "-"): json.dumps(value) if not isinstance(value, str) else value
                    for name, value in validated.model_dump(exclude_unset=True).items()}
    # Last, so a refused request takes no turn: an upload URL makes at most one task (and one reuse
    # record), so it counts as a submit in the user's per-minute window.
    points.take_submit_turn(user_id, rate_limit_per_minute=settings.submit_rate_limit_per_minute,
                            what=_("upload URLs"))
    key = f"uploads/{user_id}/{uuid.uuid4().hex[:12]}-{stem}"
    post = storage.presigned_upload(settings.results_bucket, key, content_type=content_type,
                                    max_bytes=settings.upload_max_bytes, metadata=metadata,
                                    expires=UPLOAD_URL_SECONDS)
    return {"url": post["url"], "fields": post["fields"], "key": key, "expiresIn": UPLOAD_URL_SECONDS,
            "maxBytes": settings.upload_max_bytes}
