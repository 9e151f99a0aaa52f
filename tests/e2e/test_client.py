"""The official Python client (clients/python) against the local stack: typed results, typed errors,
every page of a list, waiting with progress, uploads and downloads of real images."""
from __future__ import annotations

import socket
import threading
import time

import pytest
from PIL import Image

from aigc_client import (
    AigcError,
    AuthError,
    BadRequest,
    Client,
    Conflict,
    InsufficientPoints,
    NetworkError,
    NotFound,
    Task,
    WaitTimeout,
)
from tests.e2e.conftest import free_port, new_user


@pytest.fixture
def user_client(stack):
    """A new user with 200 points and a client logged in as that user."""
    user = new_user("cli")
    stack.grant(user, 200)
    with Client(stack.url, stack.token(user)) as client:
        yield user, client


def _png(path, width=320, height=240):
    Image.new("RGB", (width, height), (30, 120, 200)).save(path, "PNG")
    return path


def test_submit_wait_download_leaves_a_real_png(stack, user_client, tmp_path):
    user, client = user_client
    task = client.submit("wanx-v1", prompt="a red kite")
    assert isinstance(task, Task) and task.status == "queued" and task.points_cost == 20
    seen: list[Task] = []
    final = client.wait(task, timeout=60, interval=0.2, on_progress=seen.append)
    assert final.status == "completed" and final.progress == 100 and final.result_urls
    assert seen[0].task_no == task.task_no and seen[-1].status == "completed"
    assert {t.status for t in seen[:-1]} <= {"queued", "processing"}
    [path] = client.download(final, tmp_path / "out")
    assert path.parent == tmp_path / "out" and path.name.startswith(task.task_no)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size == (1024, 1024)
    assert client.balance().balance == 180
    assert [(e.type, e.amount, e.task_no) for e in client.records()] == [("debit", -20, task.task_no),
                                                                         ("grant", 200, None)]


def test_unknown_model_is_a_typed_error_with_the_api_message(stack, user_client):
    user, client = user_client
    raw = stack.submit(user, modelName="no-such-model", prompt="x").json()
    with pytest.raises(NotFound) as caught:
        client.submit("no-such-model", prompt="x")
    assert caught.value.status == caught.value.code == 404
    assert caught.value.message == raw["message"] and "no-such-model" in caught.value.message
    assert client.balance().balance == 200


def test_each_refusal_is_its_own_exception_and_changes_nothing(stack, user_client):
    user, client = user_client
    with pytest.raises(BadRequest) as bad:
        client.submit("wanx-v1", prompt="x", parameters={"n": 9})
    assert bad.value.code == 400 and "n" in bad.value.message
    with pytest.raises(NotFound):
        client.get("TASK-20200101000000000-0000000000000000")
    with Client(stack.url, None) as anonymous, pytest.raises(AuthError) as auth:
        anonymous.balance()
    assert auth.value.status == 401
    poor = new_user("poor")
    stack.grant(poor, 5)
    with Client(stack.url, stack.token(poor)) as client_poor, pytest.raises(InsufficientPoints) as points:
        client_poor.submit("wanx-v1", prompt="a kite")
    assert points.value.code == 402 and "20" in points.value.message and "5" in points.value.message
    assert stack.balance(poor) == 5
    with Client(f"http://127.0.0.1:{free_port()}", "t", retries=0) as nowhere, pytest.raises(NetworkError):
        nowhere.balance()
    assert client.balance().balance == 200 and list(client.list()) == []


def test_list_and_records_iterate_over_every_page(stack, user_client):
    user, client = user_client
    submitted = [client.submit("image-out-painting", image_url=stack.sample_url(64, 64),
                               parameters={"xScale": 1.5}).task_no for _ in range(5)]
    one_page = stack.call("GET", "/user/ai/tasks/list", user=user, params={"size": 2}).json()["data"]
    assert len(one_page["records"]) == 2 and one_page["nextToken"]  # 5 tasks: 3 pages, followed by cursor
    listed = [t.task_no for t in client.list(page_size=2)]
    assert sorted(listed) == sorted(submitted) and len(listed) == 5
    assert {t.task_no for t in client.list(status="queued", page_size=2)} <= set(submitted)
    entries = list(client.records(page_size=2))
    assert sorted((e.type, e.amount) for e in entries) == [("debit", -10)] * 5 + [("grant", 200)]


def test_upload_of_a_png_creates_a_task_that_completes(stack, user_client, tmp_path):
    user, client = user_client
    task = client.upload(_png(tmp_path / "beach.png"), parameters={"xScale": 1.5})
    assert task.source == "upload" and task.model_name == "image-out-painting"
    final = client.wait(task, timeout=60, interval=0.2)
    assert final.status == "completed" and final.parameters["x_scale"] == 1.5
    [path] = client.download(final, tmp_path)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size == (480, 480)  # 320x240, xScale 1.5, yScale 2
    assert client.balance().balance == 190


def test_wait_times_out_then_cancel_refunds(stack, user_client):
    user, client = user_client
    task = client.submit("wanx-v1", prompt="slow [sim:seconds=120]")
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        client.wait(task, timeout=0.5, interval=0.1)
    assert time.monotonic() - started < 10 and caught.value.task.task_no == task.task_no
    assert not caught.value.task.done
    cancelled = client.cancel(task)
    assert cancelled.status == "cancelled" and cancelled.refunded
    assert client.wait(task.task_no, timeout=5).status == "cancelled"
    with pytest.raises(Conflict) as conflict:
        client.cancel(task)
    assert conflict.value.code == 409
    assert client.balance().balance == 200


def test_download_saves_every_image_of_a_multi_image_task(stack, user_client, tmp_path):
    user, client = user_client
    task = client.wait(client.submit("wanx-v1", prompt="two kites", parameters={"n": 2, "size": "720*1280"}),
                       timeout=60, interval=0.2)
    assert task.status == "completed" and len(task.result_urls) == 2 and task.points_cost == 40
    paths = client.download(task.task_no, tmp_path)
    assert [p.name for p in paths] == [f"{task.task_no}-1.png", f"{task.task_no}-2.png"]
    for path in paths:
        with Image.open(path) as picture:
            assert picture.format == "PNG" and picture.size == (720, 1280)
    pending = client.submit("wanx-v1", prompt="later [sim:seconds=60]")
    with pytest.raises(AigcError, match="not completed"):
        client.download(pending, tmp_path / "none")
    client.cancel(pending)
    assert not (tmp_path / "none").exists()


class FlakyProxy:
    """A TCP relay to the API that can drop the next N connections (and the open ones): a network blip."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.to_drop = self.dropped = 0
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def blip(self, connections: int) -> None:
        with self.lock:
            self.to_drop = connections
            for conn in self.open:
                conn.close()
            self.open.clear()

    def close(self) -> None:
        self.listener.close()
        self.blip(0)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.to_drop:
                    self.to_drop -= 1
                    self.dropped += 1
                    conn.close()
                    continue
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                self.open += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                try:
                    s.close()
                except OSError:
                    pass


def test_wait_rides_out_a_network_blip_but_not_an_outage(stack, user_client):
    user, client = user_client
    proxy = FlakyProxy(stack.port)
    try:
        with Client(f"http://127.0.0.1:{proxy.port}", stack.token(user), retries=0) as flaky:
            task = flaky.submit("wanx-v1", prompt="blip [sim:seconds=2]")
            proxy.blip(3)  # the next 3 polls fail
            final = flaky.wait(task, timeout=60, interval=0.2)
            assert final.status == "completed" and proxy.dropped == 3
            slow = flaky.submit("wanx-v1", prompt="outage [sim:seconds=60]")
            proxy.blip(100)
            with pytest.raises(NetworkError):
                flaky.wait(slow, timeout=60, interval=0.05)
            # 6 failed polls: WAIT_POLL_FAILURES (5) ridden out, the 6th raised (the first may fail on
            # the pooled connection the blip closed, without a new connection to drop).
            assert 3 + 5 <= proxy.dropped <= 3 + 6
        client.cancel(slow)
    finally:
        proxy.close()


def test_retry_makes_a_new_task_charged_anew_once_per_key(stack, user_client):
    user, client = user_client
    first = client.submit("wanx-v1", prompt="slow [sim:seconds=120]")
    client.cancel(first)
    assert client.balance().balance == 200
    again = client.retry(first, idempotency_key=f"retry-{first.task_no}")
    assert again.task_no != first.task_no and again.model_name == "wanx-v1" and not again.done
    assert client.retry(first.task_no, idempotency_key=f"retry-{first.task_no}").task_no == again.task_no
    assert client.balance().balance == 180  # charged anew, once
    client.cancel(again)
    done = client.wait(client.submit("wanx-v1", prompt="a kite"), timeout=60, interval=0.2)
    with pytest.raises(Conflict) as conflict:
        client.retry(done)
    assert conflict.value.code == 409 and client.balance().balance == 180
