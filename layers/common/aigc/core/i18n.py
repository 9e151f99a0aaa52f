"""Messages in the reader's language: English msgids with named parameters, translated from gettext
catalogs (`locale/<ll_CC>/LC_MESSAGES/aigc.mo`, read with the standard library) where they are shown.

Code that finds something to tell a user writes `_("not enough points: this task costs {cost}", cost=5)`:
a `Message`, the English template and its values, in no language yet. The edges render it: the HTTP
error mapping and the views in the request's language (`Accept-Language`, negotiated in
`aigc.api.http`), webhook bodies in the language recorded on the task. Rules and flows never know a
language. `str(message)` is the English text (logs, exceptions, tests).

A message stored for later (a task's errorMessage) is kept as `Message.to_json()` beside its English
text, so it is rendered again in whoever reads it's language. The catalogs are made with Babel
(`make messages`: extract, update, compile); tests/unit/test_i18n.py fails when a msgid has no
Chinese text or the committed .mo differs from the .po.
"""
from __future__ import annotations

import contextvars
import gettext
import json
import string
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

DOMAIN = "aigc"
LOCALE_DIR = Path(__file__).with_name("locale")
DEFAULT_LANGUAGE = "en"
# The API's language tags (BCP 47, as in Content-Language) -> their catalogs (gettext names).
CATALOGS: dict[str, str | None] = {"en": None, "zh-CN": "zh_CN"}
LANGUAGES = tuple(CATALOGS)

_current: contextvars.ContextVar[str] = contextvars.ContextVar("aigc_language", default=DEFAULT_LANGUAGE)
_FORMATTER = string.Formatter()


def placeholders(template: str) -> set[str]:
    """The `{name}`s of a template (for the catalog tests)."""
    return {name for _text, name, _spec, _conv in _FORMATTER.parse(template) if name}


class Message(str):
    """A text for a user: an English template (the msgid) and its values, rendered per language.

    It is a `str` whose value is the English text, so code that only logs or compares it needs nothing
    new; `render(language)` is the same text in another language. Values may be Messages themselves
    (rendered in the same language) or anything `str()` shows. `english` replaces the template's own
    English rendering (pydantic's exact wording of an error).
    """

    template: str
    params: dict[str, Any]
    english: str | None
    parts: tuple[Message, ...] | None
    separator: str
    swap: tuple[str, str] | None

    def __new__(cls, template: str, /, **params: Any) -> Message:
        return cls._make(template, params)

    @classmethod
    def _make(cls, template: str, params: dict[str, Any], *, english: str | None = None,
              parts: tuple[Message, ...] | None = None, separator: str = "",
              swap: tuple[str, str] | None = None) -> Message:
        if english is not None:
            text = english
        elif parts is not None:
            text = _swapped(separator.join(parts), swap)
        else:
            text = _format(template, template, params, DEFAULT_LANGUAGE)
        self = super().__new__(cls, text)
        self.template, self.params, self.english, self.parts, self.separator, self.swap = (
            template, params, english, parts, separator, swap)
        return self

    def __reduce__(self):  # copy and pickle make it again from its parts
        return (Message.from_dict, (self.to_dict(),))

    @classmethod
    def join(cls, parts: Iterable[Message | str], separator: str = "; ") -> Message:
        """Several messages shown as one (`a; b; c`), each rendered in the same language."""
        return cls._make("", {}, parts=tuple(part if isinstance(part, Message) else verbatim(part) for part in parts),
                         separator=separator)

    def relabel(self, field: str, new_field: str) -> Message:
        """The same message naming `new_field` where it starts with `field` (field names are the same in
        every language): `parameters.duration: ...` shown as `inputs.seconds: ...`."""
        return Message._make("", {}, parts=(self,), swap=(field, new_field))

    def with_english(self, english: str) -> Message:
        """The same message whose English text is `english` (another library's exact wording)."""
        return Message._make(self.template, self.params, english=english)

    def render(self, language: str | None = None) -> str:
        language = language or _current.get()
        if CATALOGS.get(language) is None:
            return str.__str__(self)  # English: the text this str already is
        if self.parts is not None:
            return _swapped(self.separator.join(part.render(language) for part in self.parts), self.swap)
        return _format(translate(self.template, language), self.english or self.template, self.params, language)

    def __str__(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Message({str.__repr__(self)})"

    # ---- stored messages (a task's errorMessage): rendered again in the reader's language
    def to_dict(self) -> dict:
        if self.parts is not None:
            data = {"parts": [part.to_dict() for part in self.parts], "separator": self.separator}
            return {**data, "swap": list(self.swap)} if self.swap else data
        data: dict = {"msgid": self.template}
        if self.params:
            data["params"] = {name: value.to_dict() if isinstance(value, Message) else _plain(value)
                              for name, value in self.params.items()}
        if self.english is not None:
            data["english"] = self.english
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> Message:
        if "parts" in data:
            swap = data.get("swap")
            return cls._make("", {}, parts=tuple(cls.from_dict(part) for part in data["parts"]),
                             separator=str(data.get("separator", "; ")),
                             swap=(str(swap[0]), str(swap[1])) if isinstance(swap, list) and len(swap) == 2 else None)
        params = {name: cls.from_dict(value) if isinstance(value, dict) and ("msgid" in value or "parts" in value)
                  else value for name, value in (data.get("params") or {}).items()}
        english = data.get("english")
        return cls._make(str(data.get("msgid", "")), params, english=str(english) if english is not None else None)

    @classmethod
    def from_json(cls, text: str) -> Message:
        return cls.from_dict(json.loads(text))


def _swapped(text: str, swap: tuple[str, str] | None) -> str:
    if swap and text.startswith(swap[0]):
        return swap[1] + text[len(swap[0]):]
    return text


def _format(text: str, fallback: str, params: dict[str, Any], language: str) -> str:
    """`text` with the values (Messages among them rendered in `language`); a translation whose
    placeholders do not fit its values falls back to `fallback`, never to an error."""
    values = {name: value.render(language) if isinstance(value, Message) else value for name, value in params.items()}
    for candidate in (text, fallback):
        try:
            return candidate.format_map(values)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError):
            continue
    return fallback


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def _(template: str, /, **params: Any) -> Message:
    """Mark a user-facing text (the msgid `pybabel extract` collects) with its values."""
    return Message(template, **params)


def verbatim(text: str) -> Message:
    """A text that is the same in every language (a user's own words, an id): never translated."""
    return Message("{text}", text=str(text))


def translate(msgid: str, language: str | None = None) -> str:
    """The catalog's text for `msgid` in `language`, else `msgid` (English)."""
    catalog = CATALOGS.get(language or _current.get())
    if catalog is None or not msgid:
        return msgid
    return _translations(catalog).gettext(msgid)


@lru_cache(maxsize=None)
def _translations(catalog: str) -> gettext.NullTranslations:
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[catalog], fallback=True)


def render(text: Message | str | None, language: str | None = None) -> str | None:
    """A Message in `language` (default: the current one); a plain string as it is."""
    if isinstance(text, Message):
        return text.render(language)
    return text


def restore(english: str | None, stored: str | None) -> Message | None:
    """A message kept on a record (its English text and `stored(...)`) as a Message again. A record
    written before the catalogs has only the English text: translated where it is a msgid."""
    if stored:
        try:
            return Message.from_json(stored)
        except (ValueError, TypeError, AttributeError):
            pass
    if english is None:
        return None
    return Message(english)


def render_stored(english: str | None, stored: str | None, language: str | None = None) -> str | None:
    """A message kept on a record, in `language` (default: the current one)."""
    message = restore(english, stored)
    return message.render(language) if message is not None else None


def stored(message: Message | str | None) -> str | None:
    """What a record keeps beside the English text so the message can be rendered again later."""
    return message.to_json() if isinstance(message, Message) else None


def current_language() -> str:
    return _current.get()


def supported(language: str | None) -> str:
    """`language` if there is a catalog for it, else the default (records and payloads keep these)."""
    return language if language in CATALOGS else DEFAULT_LANGUAGE


@contextmanager
def use_language(language: str | None) -> Iterator[str]:
    """Render in `language` inside the block (a request, a webhook body)."""
    token = _current.set(supported(language))
    try:
        yield _current.get()
    finally:
        _current.reset(token)
