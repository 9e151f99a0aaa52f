"""Provider adapters behind one interface (`base.Provider`); `get_provider` builds one by name.

API keys come from Secrets Manager through powertools Parameters (cached), never from plain
environment variables, and are never logged.
"""
from __future__ import annotations

from aigc.core.config import get_settings
from aigc.core.observability import logger
from aigc.providers.base import Provider, ProviderJob, ProviderRequest

__all__ = ["Provider", "ProviderJob", "ProviderRequest", "cancel_quietly", "get_provider", "provider_keys"]

SECRET_MAX_AGE_SECONDS = 300


def provider_keys() -> dict:
    from aws_lambda_powertools.utilities import parameters

    settings = get_settings()
    if not settings.provider_secret_arn:
        raise RuntimeError("PROVIDER_SECRET_ARN is not set")
    return parameters.get_secret(settings.provider_secret_arn, transform="json", max_age=SECRET_MAX_AGE_SECONDS)


def cancel_quietly(provider: str | Provider, provider_task_id: str | None) -> None:
    """Best-effort cancel of a provider job (DashScope cancels PENDING jobs only); never raises."""
    if not provider_task_id:
        return
    try:
        adapter = get_provider(provider) if isinstance(provider, str) else provider
        if adapter.is_async:
            adapter.cancel(provider_task_id)
    except Exception:
        logger.info("provider cancel not possible", exc_info=True)


def get_provider(name: str) -> Provider:
    settings = get_settings()
    keys = provider_keys()
    if name == "dashscope":
        from aigc.providers.dashscope import DashScopeProvider

        return DashScopeProvider(settings.dashscope_base_url, keys["dashscope_api_key"])
    if name == "openai":
        from aigc.providers.openai_images import OpenAIImagesProvider

        return OpenAIImagesProvider(settings.openai_base_url, keys["openai_api_key"],
                                    allow_private_hosts=settings.allow_private_hosts)
    raise ValueError(f"unknown provider {name!r}")
