"""Issue 19: the store step's video half (aigc.store.storage) on real MP4 bytes (made by the simulator's
encoder) and moto's S3: the poster frame, what the clip really is, damaged files refused as the
provider's fault, and a video over the maximum refused before a byte of it is read."""
from __future__ import annotations

import io
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from aigc.core.errors import ProviderRejected
from aigc.store import storage
from local.simulator import imaging, video

BUCKET = "results-bucket"


@pytest.fixture(scope="module")
def clip() -> bytes:
    return video.make_clip("t2v", "a red kite", {"size": "832*480", "duration": 5}, first_frame=None, fps=4,
                           scale=0.25, seed="unit")


@pytest.fixture
def s3():
    storage._s3.cache_clear()
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client
    storage._s3.cache_clear()


def _file(data: bytes):
    spool = tempfile.NamedTemporaryFile(suffix=".mp4")
    spool.write(data)
    spool.flush()
    return spool


def test_a_video_gets_its_poster_and_its_real_size_and_length(s3, clip):
    with _file(clip) as spool:
        info = storage.video_poster(spool.name, BUCKET, "results/alice/TASK-1/thumbnail.jpg")
        key = storage.upload_video(spool.name, BUCKET, "results/alice/TASK-1/1.mp4")
    assert dict(info) == {"width": 208, "height": 120, "durationSeconds": 5.0, "codec": "h264", "frames": 20}
    poster = Image.open(io.BytesIO(s3.get_object(Bucket=BUCKET, Key="results/alice/TASK-1/thumbnail.jpg")["Body"].read()))
    assert poster.format == "JPEG" and poster.size == (208, 120)
    stored = s3.head_object(Bucket=BUCKET, Key=key)
    assert (stored["ContentType"], stored["ContentLength"]) == ("video/mp4", len(clip))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "picture", "empty"])
def test_a_damaged_video_is_the_providers_fault_and_writes_nothing(s3, clip, damage):
    data = {"garbage": video.corrupt_clip("x"), "truncated": clip[: len(clip) // 2],
            "picture": imaging.encode_png(imaging.sample_picture("p", 64, 64)), "empty": b""}[damage]
    with _file(data) as spool, pytest.raises(ProviderRejected) as refused:
        storage.video_poster(spool.name, BUCKET, "results/alice/TASK-2/thumbnail.jpg")
    assert refused.value.code == "ResultCorrupt"
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


class _VideoHost:
    """Serves `size` bytes of video, with or without a Content-Length, counting what it sent."""

    def __init__(self, size: int, declare_length: bool):
        host = self
        self.sent = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                if declare_length:
                    self.send_header("Content-Length", str(size))
                else:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    left = size
                    while left:
                        chunk = b"\x00" * min(left, 65536)
                        self.wfile.write(chunk if declare_length else b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        host.sent += len(chunk)
                        left -= len(chunk)
                    if not declare_length:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/clip.mp4"
        self.pattern = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("declare_length", [True, False])
def test_a_video_over_the_maximum_is_refused(declare_length):
    host = _VideoHost(8 * 1024 * 1024, declare_length)
    try:
        with tempfile.TemporaryFile() as spool:
            with pytest.raises(ProviderRejected) as refused:
                storage.download_video(host.url, spool, allowed_hosts=[host.pattern], max_bytes=1024 * 1024,
                                       allow_private=True)
            assert refused.value.code == "VideoTooLarge"
            if declare_length:  # refused on its Content-Length: nothing was spooled, let alone copied
                assert spool.tell() == 0
    finally:
        host.stop()


def test_a_video_within_the_maximum_is_spooled_whole():
    host = _VideoHost(300_000, True)
    try:
        with tempfile.TemporaryFile() as spool:
            content_type = storage.download_video(host.url, spool, allowed_hosts=[host.pattern],
                                                  max_bytes=1024 * 1024, allow_private=True)
            assert (content_type, spool.tell()) == ("video/mp4", 300_000)
    finally:
        host.stop()


def test_a_video_host_outside_the_allowlist_is_refused():
    with tempfile.TemporaryFile() as spool, pytest.raises(ProviderRejected) as refused:
        storage.download_video("https://evil.example.com/clip.mp4", spool, allowed_hosts=["*.aliyuncs.com"],
                               max_bytes=1024)
    assert refused.value.code == "ResultHostNotAllowed"
