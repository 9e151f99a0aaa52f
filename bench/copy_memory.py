"""Peak memory of the result copy (provider URL -> S3) for a large file.

The S3 endpoint is a moto server in another process (so the stored object does not count
against us); the "provider" is a local HTTP server streaming a file from disk. We report how
much this process's peak RSS grew while copying, against the file size.

`--video`: the store step of a video task on a real H.264 MP4 of that size (made in a child process,
so its frames do not count here): download to /tmp, the check and poster frame with PyAV (timed:
the thumbnail step), the copy to S3 in parts.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_with_a_bucket(folder: str) -> ThreadingHTTPServer:
    """`folder` over HTTP on a free port (the provider's side), and the `bench` bucket (once moto is up)."""
    import boto3

    http = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=folder))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    for _ in range(100):
        try:
            boto3.client("s3").create_bucket(Bucket="bench")
            break
        except Exception:
            time.sleep(0.1)
    return http


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--video", action="store_true", help="an MP4 through the video store step")
    parser.add_argument("--make-video", nargs=2, metavar=("PATH", "MB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make_video:
        return _make_video(args.make_video[0], int(args.make_video[1]))
    os.environ.setdefault("ALLOW_PRIVATE_HOSTS", "true")  # the "provider" is on 127.0.0.1
    moto_port = _free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}", AWS_ACCESS_KEY_ID="x",
                      AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
    sys.path.insert(0, str(ROOT / "layers" / "common"))
    try:
        with tempfile.TemporaryDirectory() as folder:
            if args.video:
                return _video_case(args.size_mb, folder)
            source = Path(folder, "big.png")
            with source.open("wb") as out:
                out.write(b"\x89PNG\r\n\x1a\n")
                for _ in range(args.size_mb):
                    out.write(os.urandom(1024 * 1024))
            http = _serve_with_a_bucket(folder)
            import boto3

            from aigc.store import storage

            before = _rss_mb()
            started = time.perf_counter()
            with tempfile.TemporaryFile() as spool:
                key = storage.copy_url_to_s3(f"http://127.0.0.1:{http.server_port}/big.png", "bench", "out/1",
                                             allowed_hosts=[f"127.0.0.1:{http.server_port}"],
                                             max_bytes=10 * 1024 ** 3, spool=spool)
            elapsed = time.perf_counter() - started
            stored = boto3.client("s3").head_object(Bucket="bench", Key=key)["ContentLength"]
            http.shutdown()
    finally:
        moto.terminate()
    result = {"file_mb": args.size_mb, "stored_bytes": stored, "seconds": round(elapsed, 2),
              "peak_rss_growth_mb": round(_rss_mb() - before, 1)}
    print(json.dumps(result, indent=2))
    return result


def _make_video(path: str, size_mb: int) -> dict:
    """A real H.264 MP4 (1080p, 30 fps, lossless noise that barely compresses) of at least `size_mb` MB."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (1080 + 64, 1920 + 64, 3), dtype=np.uint8)
    with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "ultrafast", "qp": "0"}
        written, index = 0, 0
        while written < size_mb * 1024 * 1024:
            shift = index % 64
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(noise[shift:shift + 1080, shift:shift + 1920]),
                                               format="rgb24")
            for packet in stream.encode(frame):
                written += packet.size
                container.mux(packet)
            index += 1
        for packet in stream.encode():
            container.mux(packet)
    return {"frames": index}


def _video_case(size_mb: int, folder: str) -> dict:
    import boto3

    from aigc.store import storage

    source = Path(folder, "clip.mp4")
    subprocess.run([sys.executable, "-m", "bench.copy_memory", "--make-video", str(source), str(size_mb)],
                   check=True, cwd=ROOT)
    http = _serve_with_a_bucket(folder)
    imported = _rss_mb()
    import av  # noqa: F401 - the store step imports PyAV for a video: counted apart from the copy's growth

    before = _rss_mb()
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix=".mp4") as spool:
        storage.download_video(f"http://127.0.0.1:{http.server_port}/clip.mp4", spool,
                               allowed_hosts=[f"127.0.0.1:{http.server_port}"], max_bytes=10 * 1024 ** 3)
        downloaded = time.perf_counter()
        info = storage.video_poster(spool.name, "bench", "out/thumbnail.jpg")
        checked = time.perf_counter()
        key = storage.upload_video(spool.name, "bench", "out/1.mp4")
        copied = time.perf_counter()
    stored = boto3.client("s3").head_object(Bucket="bench", Key=key)["ContentLength"]
    http.shutdown()
    result = {"file_mb": round(source.stat().st_size / 1024 ** 2, 1), "stored_bytes": stored,
              "video": f"{info['width']}x{info['height']} {info['codec']} {info['frames']} frames "
                       f"{info['durationSeconds']} s",
              "download_seconds": round(downloaded - started, 2), "check_and_poster_seconds": round(checked - downloaded, 2),
              "upload_seconds": round(copied - checked, 2), "pyav_import_mb": round(before - imported, 1),
              "peak_rss_growth_mb": round(_rss_mb() - before, 1)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
