"""Webhook rules (Standard Webhooks, standardwebhooks.com): subscriptions, signing secrets, which
task change is which event, and the retry schedule. The delivery path is aigc.flows.webhook_delivery;
how an event travels (the stream as outbox, the queue, retries, dead letters) is told once, in
docs/ARCHITECTURE.md, "Webhook delivery"."""
from __future__ import annotations

import base64
import secrets
from datetime import datetime
from urllib.parse import urlsplit

from standardwebhooks import Webhook

from aigc.core.errors import BadRequest
from aigc.core.i18n import Message, _
from aigc.core.netcheck import UnsafeUrl, check_public_url
from aigc.core.observability import logger
from aigc.core.timeutil import utcnow
from aigc.core.vocab import WebhookEvent
from aigc.domain.tasks import is_settled
from aigc.store.db import TaskItem, WebhookSecretItem
from aigc.store.dynamo import conditional, get_or_none

EVENTS = (WebhookEvent.START, WebhookEvent.COMPLETED)
SECRET_PREFIX = "whsec_"
# Delays after the 1st, 2nd, ... failed attempt (Standard Webhooks' recommended schedule), cut at MAX_AGE.
RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_AGE_SECONDS = 24 * 3600
CONNECT_TIMEOUT, READ_TIMEOUT = 3.0, 10.0
REFUSED = "refused"


# --- the subscription a task carries -------------------------------------------------------------

def subscription(url: str | None, events: list[str] | None, *,
                 allow_private: bool = False) -> tuple[str | None, list[str] | None]:
    """Validate submit's `webhook` and `webhookEventsFilter`: (url, events) to store on the task."""
    if url is None:
        if events is not None:
            raise BadRequest(_("webhookEventsFilter: only with a webhook"))
        return None, None
    scheme = urlsplit(url).scheme.lower()
    if scheme != "https" and not (allow_private and scheme == "http"):
        raise BadRequest(_("webhook: must be an https URL"))
    problem = _unsafe(url, allow_private)
    if problem:
        raise BadRequest(_("webhook: {problem}", problem=problem))
    return url, sorted(set(events), key=EVENTS.index) if events else list(EVENTS)


def _unsafe(url: str, allow_private: bool) -> Message | None:
    try:
        check_public_url(url, allow_private_hosts=allow_private)
    except UnsafeUrl as problem:
        return problem.text
    return None  # a public name: the address is checked again when we connect (aigc.store.outbound)


# --- signing secrets (WebhookSecretsTable, one item per user) -------------------------------------

def _new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def get_secret(user_id: str) -> str:
    """The user's signing secret, created on first use (two first reads at once agree on one)."""
    existing = get_or_none(WebhookSecretItem, user_id)
    if existing is not None:
        return existing.secret
    item = WebhookSecretItem(user_id, secret=_new_secret(), updated_at=utcnow())
    if not conditional(lambda: item.save(condition=WebhookSecretItem.user_id.does_not_exist())):
        return WebhookSecretItem.get(user_id, consistent_read=True).secret
    return item.secret


def rotate_secret(user_id: str) -> str:
    """Replace the secret; deliveries signed from now on (retries included) use the new one."""
    item = WebhookSecretItem(user_id, secret=_new_secret(), updated_at=utcnow())
    item.save()
    logger.info("webhook secret rotated")
    return item.secret


def sign(secret: str, webhook_id: str, timestamp: datetime, body: str) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, by the reference implementation."""
    return Webhook(secret).sign(webhook_id, timestamp, body)


# --- events from task changes (the TasksTable stream) ---------------------------------------------

def _settled(task: TaskItem | None) -> bool:
    return task is not None and is_settled(task)


def events_of_change(old: TaskItem | None, new: TaskItem) -> list[str]:
    """The webhook events one write of a task produces, honouring its events filter."""
    if not new.webhook_url:
        return []
    wanted = set(new.webhook_events or EVENTS)
    found = []
    if WebhookEvent.START in wanted and new.started_at is not None and (old is None or old.started_at is None):
        found.append(WebhookEvent.START)
    if WebhookEvent.COMPLETED in wanted and _settled(new) and not _settled(old):
        found.append(WebhookEvent.COMPLETED)
    return found


def webhook_id(task_no: str, event: str) -> str:
    return f"msg_{task_no}_{event}"


def next_delay(attempts: int, first_attempt_at: float, now: float) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones, or None: give up (dead-letter)."""
    left = first_attempt_at + MAX_AGE_SECONDS - now
    if attempts > len(RETRY_DELAYS) or left <= 0:
        return None
    return min(RETRY_DELAYS[attempts - 1], left)


