"""S3: streaming copies of provider outputs, thumbnails, presigned URLs. The only module touching S3."""
from __future__ import annotations

import base64
import fnmatch
import mimetypes
import tempfile
from functools import lru_cache
from typing import IO
from urllib.parse import urlsplit

import boto3

from aigc.core.errors import ProviderRejected, ProviderUnavailable

THUMBNAIL_SIZE = (256, 256)
CHUNK = 1024 * 1024
# A streamed (unseekable) upload is buffered part by part: this bounds memory to about
# part size x (concurrency + 1), whatever the size of the file (bench/copy_memory.py).
PART_SIZE = 8 * CHUNK
PART_CONCURRENCY = 2
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


class HostNotAllowed(ProviderRejected):
    """A provider output URL points outside the configured result hosts."""


@lru_cache(maxsize=1)
def _s3():
    return boto3.client("s3")


def result_prefix(user_id: str, task_no: str) -> str:
    return f"results/{user_id}/{task_no}/"


def host_allowed(url: str, patterns: list[str]) -> bool:
    """Is `url` on a result host: `*.aliyuncs.com` (fnmatch, on the host name) matches https on the
    default port only; a pattern naming a port (`127.0.0.1:8090`, the local stack) matches that port,
    over http or https. No user:password@ part."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return False
    host = parts.hostname.lower()
    default_https = parts.scheme == "https" and port in (None, 443)
    for pattern in patterns:
        pattern = pattern.strip().lower()
        name, colon, pattern_port = pattern.rpartition(":") if _names_port(pattern) else (pattern, "", "")
        if not fnmatch.fnmatchcase(host, name.strip("[]")):
            continue
        if (int(pattern_port) == (port or _DEFAULT_PORTS[parts.scheme])) if colon else default_https:
            return True
    return False


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _names_port(pattern: str) -> bool:
    name, colon, port = pattern.rpartition(":")
    return bool(colon and name and port.isdigit() and not name.endswith(":"))  # not an IPv6 literal's tail


def result_location_allowed(ref: str, bucket: str, prefix: str) -> str | None:
    """The key of an `s3://` output when it lies in our bucket under the task's own `prefix`
    (`results/<user>/<task>/`), else None. Dot segments and empty segments are refused."""
    parts = urlsplit(ref)
    if parts.scheme != "s3" or parts.netloc != bucket or parts.query or parts.fragment:
        return None
    key = parts.path[1:]
    rest = key[len(prefix):] if key.startswith(prefix) else ""
    if not rest or any(segment in ("", ".", "..") for segment in rest.split("/")):
        return None
    return key


class _LimitedTee:
    """File-like reader over a streamed HTTP body that copies what it reads to a spool file."""

    def __init__(self, raw: IO[bytes], spool: IO[bytes], limit: int):
        self._raw, self._spool, self._limit, self.size = raw, spool, limit, 0

    def read(self, amount: int = -1) -> bytes:
        data = self._raw.read(CHUNK if amount is None or amount < 0 else amount)
        self.size += len(data)
        if self.size > self._limit:
            raise ProviderRejected(f"result file is larger than {self._limit} bytes", code="ResultTooLarge")
        self._spool.write(data)
        return data


def copy_url_to_s3(url: str, bucket: str, key_stem: str, *, allowed_hosts: list[str], max_bytes: int,
                   spool: IO[bytes], allow_private: bool | None = None) -> str:
    """Stream `url` into s3://bucket/<key_stem>.<ext> without holding it in memory; returns the key.

    The bytes are also spooled to `spool` (a temporary file) for the thumbnail. Every hop (redirects
    are followed here, at most 3) must be on an allowed host (`host_allowed`) and connects only to a
    public address (aigc.store.outbound; `allow_private` defaults to ALLOW_PRIVATE_HOSTS, the local stack).
    """
    import requests  # only the store step downloads: keep it out of the API's cold start

    from aigc.store import outbound

    session = outbound.session(allow_private=allow_private)
    current = url
    with session:
        for _ in range(4):
            if not host_allowed(current, allowed_hosts):
                raise HostNotAllowed("refusing to fetch a result from a host that is not allowed: "
                                     f"{_host_port(current)}", code="ResultHostNotAllowed")
            try:
                response = session.get(current, stream=True, timeout=(5, 60), allow_redirects=False)
            except outbound.BlockedAddress:
                raise HostNotAllowed(f"the result host {_host_port(current)} is not a public address",
                                     code="ResultAddressNotAllowed") from None
            except requests.RequestException as error:
                raise ProviderUnavailable(f"could not download the result: {type(error).__name__}") from None
            if response.is_redirect and response.headers.get("Location"):
                current = requests.compat.urljoin(current, response.headers["Location"])
                response.close()
                continue
            break
        else:
            raise ProviderRejected("too many redirects fetching the result", code="ResultRedirects")
        with response:
            return _stream_to_s3(response, current, bucket, key_stem, max_bytes, spool)


def _host_port(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    except ValueError:
        return "an invalid URL"


def _stream_to_s3(response, url: str, bucket: str, key_stem: str, max_bytes: int, spool: IO[bytes]) -> str:
    if response.status_code in (403, 404, 410):
        raise ProviderRejected("the provider's result has expired or is gone", code="ResultExpired")
    if response.status_code >= 400:
        raise ProviderUnavailable(f"could not download the result: HTTP {response.status_code}")
    content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not content_type.startswith("image/"):
        guessed = mimetypes.guess_type(urlsplit(url).path)[0] or ""
        content_type = guessed if guessed.startswith("image/") else "image/png"
    key = f"{key_stem}.{_EXTENSIONS.get(content_type, 'png')}"
    response.raw.decode_content = True
    reader = _LimitedTee(response.raw, spool, max_bytes)
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_chunksize=PART_SIZE, max_concurrency=PART_CONCURRENCY)
    config.max_in_memory_upload_chunks = PART_CONCURRENCY + 1  # s3transfer's default reads 10 parts ahead
    _s3().upload_fileobj(reader, bucket, key, ExtraArgs={"ContentType": content_type}, Config=config)
    return key


def put_base64_image(b64: str, bucket: str, key_stem: str) -> str:
    """Store a base64 result (sync providers) as PNG/JPEG; returns the key."""
    data = base64.b64decode(b64)
    content_type = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/webp" if data[8:12] == b"WEBP" else "image/png"
    key = f"{key_stem}.{_EXTENSIONS[content_type]}"
    _s3().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
    return key


def download_to(bucket: str, key: str, spool: IO[bytes]) -> None:
    _s3().download_fileobj(bucket, key, spool)


def write_thumbnail(image_file: IO[bytes], bucket: str, key: str) -> str:
    """A JPEG thumbnail (seed 002) of the image in `image_file`."""
    from PIL import Image  # imported here: only the store step pays for Pillow

    image_file.seek(0)
    with Image.open(image_file) as image:
        image.draft("RGB", (THUMBNAIL_SIZE[0] * 2, THUMBNAIL_SIZE[1] * 2))
        image = image.convert("RGB")
        image.thumbnail(THUMBNAIL_SIZE)
        with tempfile.SpooledTemporaryFile(max_size=2 * CHUNK) as out:
            image.save(out, "JPEG", quality=85)
            out.seek(0)
            _s3().upload_fileobj(out, bucket, key, ExtraArgs={"ContentType": "image/jpeg"})
    return key


def presigned_get(bucket: str, key: str, expires: int) -> str:
    return _s3().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires)


def object_metadata(bucket: str, key: str) -> dict | None:
    """Size, content type and user metadata (x-amz-meta-*, lower-cased names without the prefix);
    None when there is no such object."""
    from botocore.exceptions import ClientError

    try:
        head = _s3().head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return {"size": head["ContentLength"], "content_type": head.get("ContentType"), "metadata": head.get("Metadata", {})}


def presigned_upload(bucket: str, key: str, *, content_type: str, max_bytes: int, metadata: dict, expires: int) -> dict:
    """A presigned POST limited to one key, its content type, a size range and the given metadata."""
    fields = {"Content-Type": content_type, **{f"x-amz-meta-{k}": v for k, v in metadata.items()}}
    conditions = [{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]]
    conditions += [{f"x-amz-meta-{k}": v} for k, v in metadata.items()]
    return _s3().generate_presigned_post(bucket, key, Fields=fields, Conditions=conditions, ExpiresIn=expires)
