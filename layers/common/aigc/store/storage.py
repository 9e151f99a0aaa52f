"""S3: streaming copies of provider outputs, thumbnails and video posters, presigned URLs. The only module
touching S3."""
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
VIDEO_TOO_LARGE = "VideoTooLarge"
VIDEO_CORRUPT = "ResultCorrupt"


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
    from aigc.store import outbound  # only the store step downloads: keep requests out of the API's cold start

    session = outbound.session(allow_private=allow_private)
    with session:
        response, current = _open_result(session, url, allowed_hosts)
        with response:
            return _stream_to_s3(response, current, bucket, key_stem, max_bytes, spool)


def _open_result(session, url: str, allowed_hosts: list[str]):
    """(the streamed response, its final URL): redirects followed here, at most 3, each hop on an allowed host."""
    import requests

    from aigc.store import outbound

    current = url
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
        return response, current
    raise ProviderRejected("too many redirects fetching the result", code="ResultRedirects")


def download_video(url: str, spool: IO[bytes], *, allowed_hosts: list[str], max_bytes: int,
                   allow_private: bool | None = None) -> str:
    """Stream a provider's video into `spool` (a file on /tmp), never into memory; returns its content type.

    A video whose Content-Length is over `max_bytes` is refused before a byte of it is read (VideoTooLarge);
    one that turns out larger while streaming is refused then. The same hosts and redirect rules as
    `copy_url_to_s3`; the copy to S3 is `upload_video`, once the file is known to be a video."""
    from aigc.store import outbound

    with outbound.session(allow_private=allow_private) as session:
        response, current = _open_result(session, url, allowed_hosts)
        with response:
            if response.status_code in (403, 404, 410):
                raise ProviderRejected("the provider's result has expired or is gone", code="ResultExpired")
            if response.status_code >= 400:
                raise ProviderUnavailable(f"could not download the result: HTTP {response.status_code}")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise ProviderRejected(f"the video is {int(declared)} bytes, over the {max_bytes} bytes we store",
                                       code=VIDEO_TOO_LARGE)
            response.raw.decode_content = True
            size = 0
            while chunk := response.raw.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ProviderRejected(f"the video is over the {max_bytes} bytes we store", code=VIDEO_TOO_LARGE)
                spool.write(chunk)
            spool.flush()
            content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    return content_type if content_type.startswith("video/") else "video/mp4"


class VideoInfo(dict):
    """{width, height, durationSeconds, codec, frames}: what the stored clip really is (the task view's)."""


def video_poster(path: str, bucket: str, key: str) -> VideoInfo:
    """Check that the file at `path` is a playable video and write its first frame as the JPEG poster
    (the task's thumbnail). PyAV (FFmpeg in its wheel) reads the container, decodes one frame for the
    poster and walks every packet, so a truncated or damaged file is found here: ResultCorrupt, the
    provider's fault (the task fails and is refunded), never a crash of the step."""
    import av  # only the store step of a video task pays for PyAV (StoreResultsFunction ships it)

    try:
        with av.open(path, mode="r") as container:
            if not container.streams.video:
                raise ProviderRejected("the result has no video stream", code=VIDEO_CORRUPT)
            stream = container.streams.video[0]
            poster = next(container.decode(stream), None)
            if poster is None:
                raise ProviderRejected("the video has no decodable frame", code=VIDEO_CORRUPT)
            image = poster.to_image()
            container.seek(0)
            expected_frames = stream.frames
            packets = sum(1 for packet in container.demux(stream) if packet.size)
            seconds = (float(stream.duration * stream.time_base) if stream.duration
                       else (container.duration or 0) / av.time_base)
            info = VideoInfo(width=stream.codec_context.width, height=stream.codec_context.height,
                             durationSeconds=round(seconds, 3), codec=stream.codec_context.name, frames=packets)
    except ProviderRejected:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError, EOFError) as error:
        raise ProviderRejected(f"the result is not a playable video: {type(error).__name__}",
                               code=VIDEO_CORRUPT) from None
    if info["frames"] < 1 or info["durationSeconds"] <= 0 or not (info["width"] and info["height"]):
        raise ProviderRejected("the video has no frames or no length", code=VIDEO_CORRUPT)
    if expected_frames and info["frames"] < expected_frames:  # the index names frames the file does not hold
        raise ProviderRejected(f"the video is truncated: {info['frames']} of {expected_frames} frames",
                               code=VIDEO_CORRUPT)
    _save_thumbnail(image, bucket, key)
    return info


def upload_video(path: str, bucket: str, key: str, content_type: str = "video/mp4") -> str:
    """Copy the checked video file to S3 in parts read from disk one at a time (memory stays flat)."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_chunksize=PART_SIZE, max_concurrency=PART_CONCURRENCY)
    _s3().upload_file(path, bucket, key, ExtraArgs={"ContentType": content_type}, Config=config)
    return key


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


def download_to(bucket: str, key: str, spool: IO[bytes], version_id: str | None = None) -> None:
    _s3().download_fileobj(bucket, key, spool, ExtraArgs=_version(version_id) or None)


def write_thumbnail(image_file: IO[bytes], bucket: str, key: str) -> str:
    """A JPEG thumbnail (seed 002) of the image in `image_file`."""
    from PIL import Image  # imported here: only the store step pays for Pillow

    image_file.seek(0)
    with Image.open(image_file) as image:
        image.draft("RGB", (THUMBNAIL_SIZE[0] * 2, THUMBNAIL_SIZE[1] * 2))
        _save_thumbnail(image, bucket, key)
    return key


def image_size(image_file: IO[bytes]) -> tuple[int, int] | None:
    """(width, height) of the image in `image_file` from its header, or None when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    image_file.seek(0)
    try:
        with Image.open(image_file) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _save_thumbnail(image, bucket: str, key: str) -> None:
    image = image.convert("RGB")
    image.thumbnail(THUMBNAIL_SIZE)
    with tempfile.SpooledTemporaryFile(max_size=2 * CHUNK) as out:
        image.save(out, "JPEG", quality=85)
        out.seek(0)
        _s3().upload_fileobj(out, bucket, key, ExtraArgs={"ContentType": "image/jpeg"})


VERSION_MARK = "?versionId="


def object_ref(bucket: str, key: str, version_id: str | None = None) -> str:
    """`s3://bucket/key`, pinned to one version of the object when `version_id` is given: what a task
    reads is the object that was checked, even if the key is written again later."""
    return f"s3://{bucket}/{key}" + (f"{VERSION_MARK}{version_id}" if version_id else "")


def ref_parts(ref: str) -> tuple[str, str, str | None]:
    """(bucket, key, version id or None) of an `object_ref`."""
    location, mark, version_id = ref.removeprefix("s3://").rpartition(VERSION_MARK)
    if not mark:
        location, version_id = version_id, ""
    bucket, _, key = location.partition("/")
    return bucket, key, version_id or None


def _version(version_id: str | None) -> dict:
    return {"VersionId": version_id} if version_id else {}


def presigned_get(bucket: str, key: str, expires: int, version_id: str | None = None) -> str:
    return _s3().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key, **_version(version_id)},
                                        ExpiresIn=expires)


def object_metadata(bucket: str, key: str, version_id: str | None = None) -> dict | None:
    """Size, content type and user metadata (x-amz-meta-*, lower-cased names without the prefix);
    None when there is no such object (version)."""
    from botocore.exceptions import ClientError

    try:
        head = _s3().head_object(Bucket=bucket, Key=key, **_version(version_id))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
            return None
        raise
    return {"size": head["ContentLength"], "content_type": head.get("ContentType"), "metadata": head.get("Metadata", {})}


def presigned_upload(bucket: str, key: str, *, content_type: str, max_bytes: int, metadata: dict, expires: int) -> dict:
    """A presigned POST limited to one key, its content type, a size range and the given metadata."""
    fields = {"Content-Type": content_type, **{f"x-amz-meta-{k}": v for k, v in metadata.items()}}
    conditions = [{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]]
    conditions += [{f"x-amz-meta-{k}": v} for k, v in metadata.items()]
    return _s3().generate_presigned_post(bucket, key, Fields=fields, Conditions=conditions, ExpiresIn=expires)
