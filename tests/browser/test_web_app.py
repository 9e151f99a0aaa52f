"""The web app in a real browser (Chromium, headless), against the local stack: what a person does.

- a new user is refused for want of points (402, with a link to buy), buys a pack through the local Stripe
  checkout page, submits an outpainting from Create, sees it complete with its result and a download,
  and finds it in My tasks;
- another task is cancelled from My tasks (refunded), then retried;
- a session that expires while the form is filled in returns to sign-in and then to the form, kept;
- a field the API refuses shows its message next to that field, in Chinese for a Chinese reader;
- the console is refused by the API to a non-admin, and shows an admin the counts and success rate of
  exactly the tasks this stack has made.
"""
from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from local import auth
from tests.browser.conftest import DESKTOP, app_url, sign_in
from tests.e2e.conftest import new_user


def outpainting_form(page, image_url: str, x_scale: str = "2") -> None:
    page.get_by_label("Model").select_option("image-out-painting")
    page.get_by_label("Image URL", exact=True).fill(image_url)
    page.get_by_label("Scale across").fill(x_scale)


def test_buy_points_then_create_an_outpainting_and_find_it_in_my_tasks(page, web_stack):
    user = new_user("web")
    sign_in(page, web_stack, user)
    outpainting_form(page, web_stack.sample_url(w=320, h=240, name="web"))
    expect(page.locator(".effect-preview")).to_contain_text("extend ×2 wide")
    expect(page.locator(".price-box")).to_contain_text("10 points")

    page.get_by_role("button", name=re.compile("^Create")).click()  # 0 points: the API's 402, where the user acted
    refusal = page.locator(".form-error")
    expect(refusal).to_contain_text("not enough points")
    refusal.get_by_role("link", name="Buy points").click()

    page.locator('button.buy[data-pack="starter"]').click()  # the local Stripe's checkout page, then back
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url(re.compile(r"/app/#/points\?paid="))
    expect(page.locator(".balance-big")).to_have_text("100", timeout=15_000)
    expect(page.locator("tr[data-type=purchase]")).to_contain_text("+100")

    page.get_by_role("link", name="Create").click()  # the form was kept
    expect(page.get_by_label("Scale across")).to_have_value("2")
    page.get_by_role("button", name=re.compile("^Create")).click()
    panel = page.locator(".task-panel")
    expect(panel).to_have_attribute("data-status", "completed", timeout=30_000)
    expect(panel.locator("img.result-media")).to_be_visible()
    assert page.locator(".task-panel img.result-media").evaluate("img => img.naturalWidth") == 640
    download = panel.get_by_role("link", name="Download")
    expect(download).to_have_attribute("download", re.compile(r"^TASK-.*\.png$"))
    task_no = panel.get_attribute("data-task-no")
    expect(page.locator(".balance-pill")).to_contain_text("90")

    page.get_by_role("link", name="My tasks").click()
    card = page.locator(f'.task-card[data-task-no="{task_no}"]')
    expect(card).to_have_attribute("data-status", "completed")
    expect(card.locator(".thumb img")).to_be_visible()
    expect(card.get_by_role("link", name="Download")).to_be_visible()
    assert web_stack.task(user, task_no)["status"] == "completed"


def test_an_uploaded_file_becomes_the_outpainting_task(page, web_stack, tmp_path):
    user = new_user("web")
    web_stack.grant(user, 30)
    picture = tmp_path / "holiday.png"
    web_stack.download(web_stack.sample_url(w=200, h=150, name="upload")).save(picture)
    sign_in(page, web_stack, user)
    page.get_by_label("Model").select_option("image-out-painting")
    page.get_by_label("Upload a file").check()
    page.get_by_label("Image file").set_input_files(str(picture))
    expect(page.locator("img.preview-img")).to_be_visible()
    page.get_by_label("Aspect ratio").select_option("16:9")
    page.get_by_label("Scale across").fill("2")  # lower priority than the ratio: shown as ignored
    expect(page.locator(".effect-preview")).to_contain_text("Ignored (lower priority): scale")
    expect(page.locator("fieldset.op-scale")).to_have_class(re.compile("overridden"))
    page.get_by_role("button", name=re.compile("^Create")).click()
    panel = page.locator(".task-panel")
    expect(panel).to_have_attribute("data-status", "completed", timeout=30_000)
    task = web_stack.task(user, panel.get_attribute("data-task-no"))
    assert task["source"] == "upload" and task["parameters"]["output_ratio"] == "16:9"
    assert "ignored" in task["effect"]
    assert web_stack.balance(user) == 20


def test_cancel_a_running_task_and_retry_it_from_my_tasks(page, web_stack):
    user = new_user("web")
    web_stack.grant(user, 100)
    slow = web_stack.submit(user, modelName="image-out-painting", imageUrl=web_stack.sample_url(sim_seconds=600),
                            parameters={"xScale": 1.5})
    assert slow.status_code == 200, slow.text
    task_no = slow.json()["data"]["taskNo"]
    sign_in(page, web_stack, user, route="#/tasks")
    card = page.locator(f'.task-card[data-task-no="{task_no}"]')
    expect(card.get_by_role("button", name="Cancel")).to_be_visible()
    card.get_by_role("button", name="Cancel").click()
    expect(card).to_have_attribute("data-status", "cancelled")
    expect(card).to_contain_text("refunded")
    expect(page.locator(".balance-pill")).to_contain_text("100")
    assert web_stack.task(user, task_no)["refunded"] is True

    card.get_by_role("button", name="Retry").click()  # a new task, charged anew
    expect(page.locator("#banner")).to_contain_text("Submitted again as")
    assert page.locator(".task-card").count() == 2
    retried = page.locator(".task-card").first
    assert retried.get_attribute("data-task-no") != task_no
    retried.get_by_role("button", name="Cancel").click()  # the retry is slow too: cancel it as well
    expect(retried).to_have_attribute("data-status", "cancelled")
    page.get_by_label("Status").select_option("cancelled")
    expect(page.locator(".task-card")).to_have_count(2)


def test_an_expired_session_returns_to_sign_in_and_keeps_the_form(page, web_stack):
    user = new_user("web")
    web_stack.grant(user, 50)
    short = auth.mint(user, ttl=8)
    expires = time.time() + 8
    page.goto(app_url(web_stack, f"#token={short}"))
    page.wait_for_selector("#model-select")
    page.get_by_label("Model").select_option("wanx-v1")
    page.get_by_label("Prompt", exact=True).fill("a red kite over the sea")
    page.get_by_label("Number of images").fill("2")
    expect(page.locator(".price-box")).to_contain_text("40 points")
    time.sleep(max(0.0, expires - time.time()))  # the session ends while the form is filled in
    page.get_by_role("button", name=re.compile("^Create")).click()
    page.wait_for_url(re.compile(r"#/signin"))
    expect(page.locator("#banner")).to_contain_text("Your session has ended")

    page.get_by_label("User name").fill(user)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"#/create"))
    expect(page.get_by_label("Model")).to_have_value("wanx-v1")
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("a red kite over the sea")
    expect(page.get_by_label("Number of images")).to_have_value("2")
    page.get_by_role("button", name=re.compile("^Create")).click()
    expect(page.locator(".task-panel")).to_have_attribute("data-status", "completed", timeout=30_000)
    expect(page.locator(".task-panel img.result-media")).to_have_count(2)


def test_a_refused_field_shows_the_api_message_next_to_it_in_chinese(chromium, web_stack):
    user = new_user("web")
    web_stack.grant(user, 50)
    context = chromium.new_context(viewport=DESKTOP, locale="zh-CN")  # a browser that prefers Chinese
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(app_url(web_stack, "#/signin"))
    page.get_by_label("用户名").fill(user)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("link", name="我的任务")).to_be_visible()
    page.get_by_label("模型").select_option("image-out-painting")
    page.get_by_label("图片地址", exact=True).fill(web_stack.sample_url())
    page.get_by_label("水平扩展比例").fill("1.00001")  # in range, but more than 4 decimals: the API refuses it
    page.get_by_role("button", name=re.compile("^提交")).click()
    error = page.locator('.field[data-field="x_scale"] .error')
    expect(error).to_be_visible()
    expect(error).to_contain_text("4")
    assert re.search(r"[\u4e00-\u9fff]", error.inner_text()), error.inner_text()  # the API's message, in Chinese
    expect(page.get_by_label("水平扩展比例")).to_have_attribute("aria-invalid", "true")
    assert web_stack.balance(user) == 50  # nothing was charged
    context.close()
    assert not errors, errors


def test_the_console_shows_the_numbers_of_the_tasks_made_and_is_refused_to_others(page, web_stack):
    outsider = new_user("web")
    sign_in(page, web_stack, outsider, route="#/console")
    expect(page.locator("#panel-overview .error-box")).to_contain_text("admins")
    assert web_stack.call("GET", "/admin/stats", user=outsider).status_code == 403

    maker = new_user("web")  # at least one of each ending, whatever ran before
    web_stack.grant(maker, 100)
    done = web_stack.submit(maker, modelName="image-out-painting", imageUrl=web_stack.sample_url(),
                            parameters={"xScale": 2}).json()["data"]["taskNo"]
    failed = web_stack.submit(maker, modelName="image-out-painting",
                              imageUrl=web_stack.sample_url(sim_fail="InvalidParameter.ImageContent"),
                              parameters={"xScale": 2}).json()["data"]["taskNo"]
    assert web_stack.wait_task(maker, done)["status"] == "completed"
    assert web_stack.wait_task(maker, failed)["status"] == "failed"

    tasks = every_task(web_stack)
    assert all(task["status"] in ("completed", "failed", "cancelled") for task in tasks), tasks
    expected = {status: sum(task["status"] == status for task in tasks) for status in ("completed", "failed", "cancelled")}
    expected["created"] = len(tasks)
    rate = expected["completed"] / (expected["completed"] + expected["failed"])

    page.locator(".sign-out").click()
    sign_in(page, web_stack, new_user("ops"), admin=True, route="#/console")
    kpi = page.locator(".kpi")
    expect(kpi.first).to_be_visible()
    deadline = time.monotonic() + 20
    while True:  # the numbers come from the tables' streams: a moment after the tasks end
        shown = {name: page.locator(f'.kpi[data-kpi="{name}"]').get_attribute("data-value")
                 for name in ("created", "completed", "failed", "cancelled", "successRate")}
        if all(shown[name] == str(expected[name]) for name in ("created", "completed", "failed", "cancelled")):
            break
        assert time.monotonic() < deadline, (shown, expected)
        page.get_by_role("button", name="Refresh").click()
        time.sleep(1)
    assert abs(float(shown["successRate"]) - rate) < 1e-9
    expect(page.locator('.kpi[data-kpi="successRate"] .kpi-value')).to_have_text(f"{rate * 100:.1f}%".replace(".0%", "%"))
    expect(page.locator("#chart-tasks canvas")).to_be_visible()
    expect(page.locator('#per-model tr[data-model="image-out-painting"]')).to_be_visible()

    page.get_by_role("tab", name="Task search").click()
    search = page.locator("#panel-search")
    search.get_by_label("User", exact=True).fill(maker)
    search.get_by_role("button", name="Search").click()
    expect(page.locator("#search-table tbody tr")).to_have_count(2)


def every_task(stack) -> list[dict]:
    tasks, token = [], None
    while True:
        params = {"size": 100, **({"nextToken": token} if token else {})}
        response = stack.call("GET", "/admin/tasks", user="browser-admin", admin=True, params=params)
        assert response.status_code == 200, response.text
        page = response.json()["data"]
        tasks += page["records"]
        token = page["nextToken"]
        if not token:
            return tasks


def test_sign_in_at_an_oidc_issuer_with_the_code_flow_and_pkce(page, web_stack):
    """The deployed app's sign-in (Cognito's hosted UI or any OIDC issuer), against a stand-in issuer: the
    authorization request carries an S256 challenge and a state, the token request the verifier that
    hashes to it, and the token it answers is what the API then receives."""
    import base64
    import hashlib
    from urllib.parse import parse_qs, urlencode, urlsplit

    issuer = f"{web_stack.url}/_issuer"  # on the stack's origin: the local content security policy allows it
    user = new_user("oidc")
    seen: dict = {}

    def config(route):
        route.fulfill(json={"apiBase": "", "wsUrl": web_stack.ws_url, "stage": "test", "adminAuth": None,
                            "auth": {"type": "oidc", "authorizeUrl": f"{issuer}/authorize", "tokenUrl": f"{issuer}/token",
                                     "clientId": "web-client", "scope": "openid email"}})

    def authorize(route):
        query = {k: v[0] for k, v in parse_qs(urlsplit(route.request.url).query).items()}
        seen["authorize"] = query
        route.fulfill(status=302, headers={"Location": f"{query['redirect_uri']}?{urlencode({'code': 'c0de', 'state': query['state']})}"})

    def token(route):
        form = {k: v[0] for k, v in parse_qs(route.request.post_data).items()}
        seen["token"] = form
        route.fulfill(json={"access_token": auth.mint(user), "token_type": "Bearer", "expires_in": 3600})

    page.route("**/app/config.json", config)
    page.route(f"{issuer}/authorize*", authorize)
    page.route(f"{issuer}/token", token)
    page.goto(app_url(web_stack, "#/tasks"))
    page.get_by_role("button", name="Sign in or create an account").click()
    expect(page.get_by_role("heading", name="My tasks")).to_be_visible()  # back where the user was going
    expect(page.locator(".user-name")).to_have_text(user)

    asked, traded = seen["authorize"], seen["token"]
    assert asked["response_type"] == "code" and asked["client_id"] == "web-client"
    assert asked["code_challenge_method"] == "S256" and len(asked["state"]) >= 20
    assert asked["redirect_uri"] == f"{web_stack.url}/app/"
    assert traded["grant_type"] == "authorization_code" and traded["code"] == "c0de"
    assert traded["redirect_uri"] == asked["redirect_uri"] and "client_secret" not in traded
    digest = base64.urlsafe_b64encode(hashlib.sha256(traded["code_verifier"].encode()).digest()).rstrip(b"=").decode()
    assert digest == asked["code_challenge"]
    assert "?code=" not in page.url  # the code leaves the address bar
