"""A local HTTP server that misbehaves on purpose, as a user's image host or a result host can:
`/status/<code>` answers that status, `/hang` never answers, `/drip?n=&every=` sends its body a
byte at a time, `/redirect?to=` redirects, `/image.png` is a real PNG. It records every request."""
from __future__ import annotations

import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def png_bytes(size=(48, 32)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


class HostileServer:
    def __init__(self):
        self.requests: list[str] = []
        self.stopping = threading.Event()
        server = self
        png = png_bytes()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                server.requests.append(self.path)
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path.startswith("/status/"):
                    self._answer(int(parts.path.rsplit("/", 1)[1]), b"upstream trouble", "text/plain")
                elif parts.path == "/hang":
                    server.stopping.wait(30)
                elif parts.path == "/drip":
                    count, every = int(query.get("n", 15)), float(query.get("every", 0.2))
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(count))
                    self.end_headers()
                    for _ in range(count):
                        if server.stopping.wait(every):
                            return
                        self.wfile.write(b"x")
                        self.wfile.flush()
                elif parts.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", query["to"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif parts.path.endswith(".png"):
                    self._answer(200, png, "image/png")
                else:
                    self._answer(404, b"no such thing", "text/plain")

            def _answer(self, status: int, body: bytes, content_type: str):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.png = png
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port() -> int:
    """A local port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def elapsed(call) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        call()
    except BaseException as error:  # the caller asserts what it was
        return time.monotonic() - started, error
    return time.monotonic() - started, None
