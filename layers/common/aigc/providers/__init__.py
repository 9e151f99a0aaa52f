"""Provider adapters behind one interface (`base.Provider`); `get_provider` builds one by name and account.

API keys come from Secrets Manager through powertools Parameters (cached), never from plain
environment variables, and are never logged. A provider has one or more accounts (keys), listed in the
secret (aigc.providers.accounts); a task runs, is polled and is cancelled on the account it recorded.
"""
from __future__ import annotations

from aigc.core.config import get_settings
from aigc.core.observability import logger
from aigc.providers.accounts import DEFAULT_ACCOUNT, Account, parse, pick
from aigc.providers.base import Provider, ProviderJob, ProviderRequest

__all__ = ["Account", "Provider", "ProviderJob", "ProviderRequest", "accounts", "cancel_quietly", "get_provider",
           "provider_keys"]

SECRET_MAX_AGE_SECONDS = 300


def provider_keys() -> dict:
    from aws_lambda_powertools.utilities import parameters

    settings = get_settings()
    if not settings.provider_secret_arn:
        raise RuntimeError("PROVIDER_SECRET_ARN is not set")
    return parameters.get_secret(settings.provider_secret_arn, transform="json", max_age=SECRET_MAX_AGE_SECONDS)


def accounts(provider: str) -> list[Account]:
    """The provider's accounts, from the secret (cached); one keyless account when there is no secret or it
    names no key for the provider (tests and tools; a real call then fails as unauthorised)."""
    if not get_settings().provider_secret_arn:
        return [Account(DEFAULT_ACCOUNT)]
    return parse(provider_keys(), provider) or [Account(DEFAULT_ACCOUNT)]


def cancel_quietly(provider: str | Provider, provider_task_id: str | None, account: str | None = None) -> None:
    """Best-effort cancel of a provider job (DashScope cancels PENDING jobs only), on the account the job
    runs on; never raises."""
    if not provider_task_id:
        return
    try:
        adapter = get_provider(provider, account) if isinstance(provider, str) else provider
        if adapter.is_async:
            adapter.cancel(provider_task_id)
    except Exception:
        logger.info("provider cancel not possible", exc_info=True)


def get_provider(name: str, account: str | None = None) -> Provider:
    """The adapter for `name`, speaking with `account`'s key (the provider's first account when None)."""
    settings = get_settings()
    key = pick(accounts(name), account).key
    if name == "dashscope":
        from aigc.providers.dashscope import DashScopeProvider

        return DashScopeProvider(settings.dashscope_base_url, key)
    if name == "openai":
        from aigc.providers.openai_images import OpenAIImagesProvider

        return OpenAIImagesProvider(settings.openai_base_url, key,
                                    allow_private_hosts=settings.allow_private_hosts)
    raise ValueError(f"unknown provider {name!r}")
