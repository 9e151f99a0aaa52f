"""Python client for the AIGC points API: `Client(base_url, token, api_key=...)` and the `aigc` command line."""
from aigc_client.client import DEFAULT_BASE_URL, Client, language_from_environment
from aigc_client.errors import (
    AigcError,
    ApiError,
    AuthError,
    BadRequest,
    Conflict,
    InsufficientPoints,
    NetworkError,
    NotFound,
    RateLimited,
    ServerError,
    WaitTimeout,
)
from aigc_client.models import (
    FINAL_STATUSES,
    ApiKey,
    Balance,
    LedgerEntry,
    Lot,
    ModelInfo,
    Order,
    Pack,
    Page,
    Task,
    Upload,
)

__all__ = [
    "DEFAULT_BASE_URL", "FINAL_STATUSES", "AigcError", "ApiError", "ApiKey", "AuthError", "Balance", "BadRequest", "Client",
    "Conflict", "InsufficientPoints", "LedgerEntry", "ModelInfo", "NetworkError", "NotFound", "Page", "RateLimited",
    "ServerError", "Task", "Upload", "WaitTimeout", "language_from_environment", "Lot", "Order", "Pack",
]
