"""Provider accounts: a provider's API keys, listed in the provider keys' secret (Secrets Manager).

The secret is one JSON object. Per provider (`dashscope`, `openai`) it holds
`"<provider>_api_keys": [entry, ...]`, each entry the key itself or
`{"id": "...", "key": "...", "concurrency": n}`; the single `"<provider>_api_key": "..."` of earlier
deployments is one more account. Adding an entry adds an account, and with it capacity, at the next
read of the secret (aigc.providers caches it 5 minutes): no deploy.

An account's id is what a task records and the scheduler keys its slots by, never the key: the entry's
`id`, else `k` + the first 10 hex digits of the key's SHA-256, so reordering the list or adding keys
changes no id (give an `id` to rotate a key in place without changing it). `concurrency`, when given,
replaces the pool's per-account concurrency (catalog.json "capacity", ProviderCapacity) in every pool
of that account: DashScope grants 1 to 5 jobs at once per account and model, not the same to all.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

DEFAULT_ACCOUNT = "default"  # a provider with no key in the secret (tests, tools): one keyless account
_ID = re.compile(r"[A-Za-z0-9_.-]{1,40}")


@dataclass(frozen=True)
class Account:
    id: str
    key: str = field(default="", repr=False)  # never shown (repr), never logged
    concurrency: int | None = None


def key_id(key: str) -> str:
    return "k" + hashlib.sha256(key.encode()).hexdigest()[:10]


def _entry(raw) -> Account | None:
    if isinstance(raw, str):
        return Account(key_id(raw), raw) if raw.strip() else None
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str) or not raw["key"].strip():
        return None
    account_id = raw.get("id") if isinstance(raw.get("id"), str) and _ID.fullmatch(raw["id"]) else key_id(raw["key"])
    concurrency = raw.get("concurrency")
    valid = isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency >= 1
    return Account(account_id, raw["key"], concurrency if valid else None)


def parse(secret: dict, provider: str) -> list[Account]:
    """The accounts of `provider` in the secret, in their listed order, each key once. Malformed entries
    are left out (never an error that would stop every task of the provider)."""
    entries = list(secret.get(f"{provider}_api_keys") or [])
    if secret.get(f"{provider}_api_key"):
        entries.append(secret[f"{provider}_api_key"])
    found: list[Account] = []
    for raw in entries:
        account = _entry(raw)
        if account is not None and all(a.key != account.key and a.id != account.id for a in found):
            found.append(account)
    return found


def pick(accounts: list[Account], account_id: str | None) -> Account:
    """The account a task runs on; its first account when the task has none recorded (a task from before
    accounts) or the account left the secret (its jobs then answer UNKNOWN, and the task fails as such)."""
    for account in accounts:
        if account.id == account_id:
            return account
    return accounts[0]
