"""A webhook receiver on 127.0.0.1 for the local stack, its tests and benches: records every POST.

    python -m local.webhook_receiver [--port 9000] [--secret whsec_...]

prints each delivery (verified with the `standardwebhooks` library when --secret is given); submit
tasks with `"webhook": "http://127.0.0.1:9000/hook"` to `make dev`.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records every POST; answers the scripted statuses in turn, then 200."""

    def __init__(self, statuses=(), *, port: int = 0, on_delivery=None):
        self.deliveries: list[tuple[dict, bytes]] = []
        self.arrivals: list[float] = []  # time.time() of each delivery
        self.statuses = list(statuses)
        self.on_delivery = on_delivery
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.arrivals.append(time.time())
                    if receiver.on_delivery:
                        receiver.on_delivery(receiver.deliveries[-1])
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [json.loads(body)["event"] for _, body in self.deliveries]

    def wait_for(self, count: int, timeout: float = 20) -> list[tuple[dict, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.deliveries) >= count, f"{len(self.deliveries)} deliveries, wanted {count}"
        return self.deliveries

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.webhook_receiver")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", help="the user's whsec_... secret (GET /user/webhooks/secret): verify deliveries")
    args = parser.parse_args(argv)

    def show(delivery):
        headers, raw = delivery
        verdict = ""
        if args.secret:
            from standardwebhooks import Webhook

            try:
                Webhook(args.secret).verify(raw, headers)
                verdict = " verified"
            except Exception as error:
                verdict = f" NOT VERIFIED ({error})"
        payload = json.loads(raw)
        print(f"{headers.get('webhook-id')}{verdict}: {payload['event']} {payload['data']['taskNo']} "
              f"{payload['data']['status']}", flush=True)

    receiver = Receiver(port=args.port, on_delivery=show)
    print(f"listening on {receiver.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    main()
