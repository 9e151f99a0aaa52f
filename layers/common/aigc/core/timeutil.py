"""Time helpers: everything is UTC."""
from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso_ms(moment: datetime) -> str:
    """Sortable ISO-8601 with milliseconds: 2025-10-26T15:30:45.123Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def api_time(moment: datetime | None) -> str | None:
    """The API's timestamp form (seed 001, plus an explicit UTC marker): 2025-10-26T15:30:45Z."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
