"""Peak memory of the result copy (provider URL -> S3) for a large file.

The S3 endpoint is a moto server in another process (so the stored object does not count
against us); the "provider" is a local HTTP server streaming a file from disk. We report how
much this process's peak RSS grew while copying, against the file size.
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


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=200)
    args = parser.parse_args(argv)
    moto_port = _free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}", AWS_ACCESS_KEY_ID="x",
                      AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
    sys.path.insert(0, str(ROOT / "layers" / "common"))
    try:
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder, "big.png")
            with source.open("wb") as out:
                out.write(b"\x89PNG\r\n\x1a\n")
                for _ in range(args.size_mb):
                    out.write(os.urandom(1024 * 1024))
            http = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=folder))
            threading.Thread(target=http.serve_forever, daemon=True).start()
            import boto3
            from aigc.store import storage

            for _ in range(100):
                try:
                    boto3.client("s3").create_bucket(Bucket="bench")
                    break
                except Exception:
                    time.sleep(0.1)
            before = _rss_mb()
            started = time.perf_counter()
            with tempfile.TemporaryFile() as spool:
                key = storage.copy_url_to_s3(f"http://127.0.0.1:{http.server_port}/big.png", "bench", "out/1",
                                             allowed_hosts=["127.0.0.1:*"], max_bytes=10 * 1024 ** 3, spool=spool)
            elapsed = time.perf_counter() - started
            stored = boto3.client("s3").head_object(Bucket="bench", Key=key)["ContentLength"]
            http.shutdown()
    finally:
        moto.terminate()
    result = {"file_mb": args.size_mb, "stored_bytes": stored, "seconds": round(elapsed, 2),
              "peak_rss_growth_mb": round(_rss_mb() - before, 1)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
