"""Page/size paging over a DynamoDB query iterator (the API's page numbers start at 1)."""
from __future__ import annotations

from itertools import islice
from typing import Iterable, TypeVar

T = TypeVar("T")


def take_page(items: Iterable[T], page: int, size: int) -> list[T]:
    start = (page - 1) * size
    return list(islice(items, start, start + size))
