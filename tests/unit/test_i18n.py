"""Messages in the reader's language (aigc.core.i18n): the catalogs are complete and compiled, the code
marks every user-facing text, and the API negotiates Accept-Language.

When a test here fails after you added a message: `make messages`, translate the new msgstr in
layers/common/aigc/core/locale/zh_CN/LC_MESSAGES/aigc.po, `make messages` again (it compiles the .mo).
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest
from pydantic_core._pydantic_core import list_all_errors

import aigc
from aigc.api.http import negotiate_language
from aigc.api.validation_messages import ERROR_TYPES
from aigc.core import i18n
from aigc.core.errors import AppError, InsufficientPoints, Unauthorized
from aigc.core.i18n import Message, _
from aigc.core.netcheck import UnsafeUrl
from local import messages

ROOT = Path(__file__).resolve().parents[2]
ZH = "zh-CN"
FIX = "run `make messages`, translate the new msgstr in the .po, run `make messages` again"


@pytest.fixture(scope="module")
def code_msgids():
    return {message.id: message for message in messages.extract() if message.id}


@pytest.fixture(scope="module", params=messages.LANGUAGES)
def language(request):
    return request.param


@pytest.fixture(scope="module")
def catalog(language):
    return messages.read_catalog(language)


# --- the catalogs ---------------------------------------------------------------------------------------

def test_every_message_in_the_code_has_a_translation(code_msgids, language, catalog):
    translated = {message.id for message in catalog if message.id and message.string and not message.fuzzy}
    untranslated = sorted(set(code_msgids) - translated)
    assert not untranslated, f"{language}: {len(untranslated)} message(s) without a translation ({FIX}): " \
                             f"{untranslated}"


def test_the_catalog_has_no_message_the_code_no_longer_uses(code_msgids, language, catalog):
    stale = sorted({message.id for message in catalog if message.id} - set(code_msgids))
    assert not stale, f"{language}: msgids no longer in the code ({FIX}): {stale}"


def test_translations_keep_the_placeholders(catalog):
    """A translation names exactly its msgid's values (a missing one loses information, an unknown one
    would fall back to English). pydantic's templates may leave some out (`{expected_plural}`...)."""
    pydantic_templates = {message.template for message in ERROR_TYPES.values()}
    for message in catalog:
        if not message.id or not message.string:
            continue
        ours, theirs = i18n.placeholders(message.id), i18n.placeholders(message.string)
        if message.id in pydantic_templates:
            assert theirs <= ours, (message.id, message.string)
        else:
            assert theirs == ours, (message.id, message.string)


def test_the_committed_mo_is_the_compiled_po(language, catalog):
    """The layer ships the .mo (read by the standard library's gettext): it must be this .po, compiled."""
    compiled = messages.compile_mo(catalog)
    assert messages.mo_path(language).read_bytes() == compiled, f"the .mo is stale: {FIX}"


def test_the_catalogs_ship_inside_the_library_package():
    """The layer's Makefile copies the whole aigc package, data files included: the .mo sits in it."""
    for language in messages.LANGUAGES:
        mo = messages.mo_path(language)
        assert mo.is_relative_to(ROOT / "layers/common/aigc") and mo.exists()
    assert i18n.LOCALE_DIR == messages.LOCALE_DIR
    assert set(messages.LANGUAGES) == {name for name in i18n.CATALOGS.values() if name}


def test_the_layer_build_ships_the_catalogs(tmp_path):
    """Run the layer Makefile's own copy and clean-up steps (not its pip install): the .mo is in the
    layer, and gettext finds the Chinese there."""
    import gettext
    import subprocess

    dry = subprocess.run(["make", "-s", "-n", "build-CommonLayer", f"ARTIFACTS_DIR={tmp_path}"],
                         cwd=ROOT / "layers/common", capture_output=True, text=True, check=True).stdout
    steps = [line for line in dry.splitlines() if line.startswith(("cp ", "find "))]
    assert any(step.startswith("cp -R aigc") for step in steps)
    (tmp_path / "python").mkdir()  # made by the pip install step
    for step in steps:
        subprocess.run(step, shell=True, cwd=ROOT / "layers/common", check=True)
    locale = tmp_path / "python/aigc/core/locale"
    for language in messages.LANGUAGES:
        translations = gettext.translation(i18n.DOMAIN, localedir=locale, languages=[language])
        assert "积分不足" in translations.gettext("not enough points")


def test_every_pydantic_error_type_has_its_template():
    """The msgids of validation errors are pydantic's own templates, type by type: an upgrade that adds
    or rewords one fails here (add it to aigc.api.validation_messages and translate it)."""
    theirs = {error["type"]: error["message_template_python"] for error in list_all_errors()}
    ours = {kind: message.template for kind, message in ERROR_TYPES.items()}
    assert ours == theirs


# --- the code marks what users read ---------------------------------------------------------------------

def _library_modules():
    for module in pkgutil.walk_packages(aigc.__path__, "aigc."):
        yield importlib.import_module(module.name)


def _error_classes() -> set[str]:
    for _module in _library_modules():
        pass
    found, todo = set(), [AppError, UnsafeUrl]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


def _sources():
    for folder in ("layers/common/aigc", "functions"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_text(node: ast.AST) -> bool:
    """A literal text (str, f-string or their concatenation): not marked for translation."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _is_text(node.left) or _is_text(node.right)
    if isinstance(node, ast.IfExp):
        return _is_text(node.body) or _is_text(node.orelse)
    return False


MESSAGE_KEYWORDS = {"message", "error_message"}
# functions whose argument at this position is a text a user reads (a ledger entry's reason)
MESSAGE_POSITIONS = {"ledger_entry": 4, "_ledger_entry": 4}


def test_user_facing_errors_are_catalog_messages():
    """Every error a user reads is raised with `_("...")` (or a Message made elsewhere), never a plain
    string or f-string, which would be English in every language."""
    errors = _error_classes()
    plain = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            texts = []
            if name in errors and node.args:
                texts.append(node.args[0])
            if name in MESSAGE_POSITIONS and len(node.args) > MESSAGE_POSITIONS[name]:
                texts.append(node.args[MESSAGE_POSITIONS[name]])
            texts += [keyword.value for keyword in node.keywords if keyword.arg in MESSAGE_KEYWORDS]
            plain += [f"{path.relative_to(ROOT)}:{text.lineno}" for text in texts if _is_text(text)]
    assert not plain, f"user-facing texts not marked with _(): {plain}"


def test_error_classes_default_to_catalog_messages():
    for _module in _library_modules():
        pass
    todo = [AppError]
    while todo:
        cls = todo.pop()
        assert isinstance(cls.default_message, Message), cls
        todo.extend(cls.__subclasses__())


def test_msgids_are_literal_strings():
    """Extraction reads the first argument of `_()`: it must be a plain string literal (not an f-string,
    not a variable), or the catalog would miss it."""
    wrong = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_":
                first = node.args[0] if node.args else None
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not wrong, wrong


# --- rendering ------------------------------------------------------------------------------------------

def test_seed_001s_branches_find_their_words():
    """Seed 001's JavaScript decides by `message.includes("积分不足")` and `includes("未登录")`."""
    assert "积分不足" in InsufficientPoints(cost=30, balance=5).text.render(ZH)
    assert "未登录" in Unauthorized().text.render(ZH)
    assert str(InsufficientPoints(cost=30, balance=5)).startswith(
        "not enough points: this task costs 30, your balance is 5")


def test_a_message_is_its_english_text_and_renders_per_language():
    message = _("task {task_no} is {status}; nothing to refund", task_no="TASK-1", status="completed")
    assert message == "task TASK-1 is completed; nothing to refund"
    assert message.render(ZH) == "任务 TASK-1 为 completed 状态，无需退款"
    assert message.render("fr") == message.render("en") == str(message)
    with i18n.use_language(ZH):
        assert i18n.render(message) == message.render(ZH)
    assert i18n.current_language() == "en"


def test_nested_and_joined_messages_render_in_one_language_and_survive_storage():
    inner = _("{minutes} minutes", minutes=10)
    outer = Message.join([_("timed out: no result within {span}; your points were refunded", span=inner),
                          "a user's own words"])
    assert str(outer) == "timed out: no result within 10 minutes; your points were refunded; a user's own words"
    restored = i18n.restore(str(outer), i18n.stored(outer))
    assert restored.render(ZH) == outer.render(ZH) == "已超时：10 分钟内未获得结果，积分已退还; a user's own words"


def test_records_without_a_stored_message_show_their_english_text_translated_when_known():
    assert i18n.render_stored("The task was canceled.", None, ZH) == "任务已取消。"
    assert i18n.render_stored("an operator's note {with braces}", None, ZH) == "an operator's note {with braces}"
    assert i18n.render_stored(None, None, ZH) is None
    assert i18n.render_stored("english", "not json", ZH) == "english"


def test_a_broken_translation_falls_back_to_english_never_an_error(monkeypatch):
    monkeypatch.setattr(i18n, "translate", lambda msgid, language=None: "坏的 {unknown}")
    assert _("conflict {x}", x=1).render(ZH) == "conflict 1"


def test_validation_errors_name_the_field_in_chinese():
    from pydantic import ValidationError

    from aigc.api.parameters import OutpaintingParameters
    from aigc.api.schemas import describe_validation_error

    with pytest.raises(ValidationError) as error:
        OutpaintingParameters.model_validate({"xScale": 5, "angle": "x", "extra": 1})
    described = describe_validation_error(error.value, "parameters")
    assert str(described) == ("parameters.angle: Input should be a valid integer; parameters.xScale: Input should be "
                              "less than or equal to 3; parameters.extra: not a parameter of this model")
    assert described.render(ZH) == ("parameters.angle：输入应为整数; parameters.xScale：输入应小于或等于 3; "
                                    "parameters.extra：不是此模型的参数")
    with pytest.raises(ValidationError) as error:
        OutpaintingParameters.model_validate({"xScale": 1.23456})
    assert describe_validation_error(error.value).render(ZH) == "xScale：最多 4 位小数"


# --- negotiation ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("header, language", [
    (None, "en"), ("", "en"), ("zh-CN", ZH), ("zh", ZH), ("ZH-cn", ZH), ("zh-Hans-CN", ZH), ("zh-SG", ZH),
    ("en-US,en;q=0.9", "en"), ("zh-CN,zh;q=0.9,en;q=0.8", ZH), ("en;q=0.5, zh;q=0.8", ZH),
    ("en, zh-CN;q=0.9", "en"), ("fr-FR, zh;q=0.2", ZH), ("fr-FR, de", "en"), ("zh-TW", "en"), ("zh-Hant", "en"),
    ("zh-TW, zh-CN;q=0.5", ZH), ("*", "en"), ("*;q=0.5, zh", ZH), ("en;q=0, *", ZH), ("zh;q=0, *", "en"),
    ("zh;q=0", "en"), ("zh;q=1.0", ZH), ("zh;q=2", "en"), ("zh;q=abc, en", "en"), ("zh;q=0.001", ZH),
    ("\u4e2d\u6587, zh", ZH), (";;,,", "en"), ("zh-" + "x" * 9, "en"), ("zh-CN;level=1;q=0.4", ZH),
])
def test_accept_language_is_negotiated_by_q_value(header, language):
    assert negotiate_language(header) == language


def test_a_huge_header_is_cut_not_parsed_forever():
    assert negotiate_language("fr;q=0.1," * 100_000 + "zh") == "en"


# --- the client and the CLI follow the user's locale ----------------------------------------------------

@pytest.mark.parametrize("environ, header", [
    ({}, None), ({"LANG": "C"}, None), ({"LANG": "C.UTF-8", "LANGUAGE": "zh_CN"}, None),
    ({"LANG": "zh_CN.UTF-8"}, "zh-CN"), ({"LANG": "en_US.UTF-8", "LC_ALL": "zh_CN.UTF-8"}, "zh-CN"),
    ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_CN"}, "zh-CN"), ({"LANG": "en_US.UTF-8"}, "en-US"),
    ({"LANG": "zh_CN.UTF-8", "LANGUAGE": "zh_CN:en"}, "zh-CN, en;q=0.9"), ({"LANG": "zh_TW.Big5"}, "zh-TW"),
    ({"LANG": "sr_RS@latin"}, "sr-RS"),
])
def test_the_client_reads_the_language_as_gettext_does(environ, header):
    from aigc_client import language_from_environment

    assert language_from_environment(environ) == header
    if header:
        assert negotiate_language(header) == (ZH if header.startswith("zh-CN") else "en")


def test_the_client_sends_accept_language():
    from aigc_client import Client

    with Client("http://127.0.0.1:9", "t", language="zh-CN") as client:
        assert client._http.headers["Accept-Language"] == "zh-CN"
    with Client("http://127.0.0.1:9", "t") as client:
        assert "Accept-Language" not in client._http.headers


# --- bodies sent without a request: the task's language ---------------------------------------------------

def _failed_task(language: str | None):
    from datetime import datetime, timezone

    from aigc.providers.error_messages import user_message
    from aigc.store.db import TaskItem

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return TaskItem("TASK-20260101000000000-0123456789abcdef", user_id="alice", created_at="2026-01-01T00:00:00.000Z",
                    model_name="wanx-v1", task_type="text_to_image", provider="dashscope", provider_model="wanx-v1",
                    status="failed", points_cost=10, expected_seconds=10, deadline_at=now, completed_at=now,
                    refunded=True, error_code="DataInspectionFailed",
                    error_message=str(user_message("DataInspectionFailed")),
                    error_text=i18n.stored(user_message("DataInspectionFailed")), language=language,
                    webhook_url="https://example.com/hook")


@pytest.mark.parametrize("language, expected", [
    ("zh-CN", "您的提示词或图像可能包含不当内容，请修改后重试。"),
    ("en", "Your prompt or image may contain inappropriate content. Please change it and try again."),
    (None, "Your prompt or image may contain inappropriate content. Please change it and try again."),
])
def test_webhook_and_socket_bodies_are_in_the_language_of_the_submit(language, expected):
    import json

    from aigc.flows import push, webhook_delivery

    task = _failed_task(language)
    body = json.loads(webhook_delivery.render("completed", task))
    assert body["data"]["errorMessage"] == expected
    old = _failed_task(language)
    old.status, old.refunded = "processing", False
    record = {"dynamodb": {"Keys": {"task_no": {"S": task.task_no}}, "NewImage": task.serialize(),
                           "OldImage": old.serialize()}}
    with i18n.use_language("zh-CN" if language != "zh-CN" else "en"):  # whatever else is current
        [(user, _event, render)] = push.events_of_record(record)
        data = render()  # rendered only for a user with a socket, in the task's language whatever is current
    assert user == "alice" and data["errorMessage"] == expected
