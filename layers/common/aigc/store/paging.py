"""Paging over DynamoDB queries: opaque `nextToken` cursors, and seed 001's page/size on top.

A token is the key of the last item of a page (what DynamoDB takes as ExclusiveStartKey), without
the owner: the owner comes from the caller's token, so a page token can never reach another
user's partition. Tokens are checked field by field (a token of one list is refused by another)
and anything that does not decode is a 400 naming `nextToken`.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from itertools import islice
from typing import Callable, Generic, Iterable, Optional, TypeVar

from aigc.core.errors import BadRequest
from aigc.core.i18n import _

T = TypeVar("T")
TOKEN_FIELD = "nextToken"
_MAX_TOKEN = 1024


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: Optional[str]
    total: Optional[int]  # None where no counter is kept (filtered lists)
    page: Optional[int]  # the page number asked for; None when paging by token
    size: int


@dataclass(frozen=True)
class Cursor:
    """How one list's page tokens look: its name and its key attributes besides the owner's."""

    kind: str
    owner_attribute: str
    fields: dict[str, re.Pattern]

    def token_after(self, item) -> str:
        raw = {"k": self.kind, **{name: getattr(item, name) for name in self.fields}}
        return base64.urlsafe_b64encode(json.dumps(raw, separators=(",", ":")).encode()).decode().rstrip("=")

    def start_key(self, token: str, owner: str) -> dict:
        """The ExclusiveStartKey a token stands for; BadRequest for anything we did not issue."""
        try:
            if len(token) > _MAX_TOKEN:
                raise ValueError("too long")
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise BadRequest(_("{field}: not a token this list issued; pass the previous page's nextToken",
                               field=TOKEN_FIELD)) from None
        if (not isinstance(raw, dict) or raw.get("k") != self.kind or set(raw) != {"k", *self.fields}
                or not all(isinstance(raw[name], str) and pattern.fullmatch(raw[name])
                           for name, pattern in self.fields.items())):
            raise BadRequest(_("{field}: not a token this list issued; pass the previous page's nextToken",
                               field=TOKEN_FIELD))
        return {self.owner_attribute: {"S": owner}, **{name: {"S": raw[name]} for name in self.fields}}


# Page N without a token reads and skips (N-1)*size items; past this page, lists go on by nextToken only,
# so no request can be made to read more than MAX_PAGE * 100 items.
MAX_PAGE = 50


def read_page(query: Callable[[Optional[dict], int], Iterable[T]], cursor: Cursor, *, owner: str, page: int,
              size: int, token: Optional[str], total: Optional[int]) -> Page[T]:
    """One page from `query(start_key, limit)` (newest first). With a token, `page` is ignored.

    Reads one item past the page to know whether another page exists, so the last page never
    hands out a token that leads to an empty page. Without a token, page N reads (N-1)*size
    items to skip them: kept for seed 001 clients, nextToken is the cheap way through a long list.
    """
    start = cursor.start_key(token, owner) if token else None
    skip = 0 if token else (page - 1) * size
    rows = list(islice(query(start, skip + size + 1), skip, skip + size + 1))
    items = rows[:size]
    next_token = cursor.token_after(items[-1]) if len(rows) > size else None
    return Page(items, next_token, total, None if token else page, size)
