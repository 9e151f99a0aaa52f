"""The API's data as typed models: camelCase on the wire, snake_case in Python.

Unknown fields are kept (`extra="allow"`), so a newer server does not break an older client;
tests/e2e/test_client_contract.py checks these fields against docs/openapi.json.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class PriceFactor(ApiModel):
    kind: str
    label: str
    factor: float | None = None
    points: float | None = None


class Pricing(ApiModel):
    """A price and why: `base` times each factor, plus each surcharge, rounded up to `total`."""

    base: int
    factors: list[PriceFactor] = Field(default_factory=list)
    total: int


class Quote(ApiModel):
    model_name: str
    task_type: str
    result_type: str = "image"
    template_code: str | None = None
    template_version: int | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    pricing: Pricing


class Template(ApiModel):
    code: str
    name: str
    version: int
    category: str
    description: str | None = None
    model_name: str
    task_type: str
    result_type: str = "image"
    preset_parameters: dict[str, Any] = Field(default_factory=dict)
    prompt_template: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    input_parameters: dict[str, str] = Field(default_factory=dict)
    images: dict[str, int] = Field(default_factory=dict)
    example: dict[str, Any] = Field(default_factory=dict)
    pricing: dict[str, Any] = Field(default_factory=dict)
    price_rules: list[str] = Field(default_factory=list)
    example_price: int | None = None


class Task(ApiModel):
    task_no: str
    model_name: str
    status: str
    task_type: str | None = None
    progress: int = 0
    prompt_snippet: str | None = None
    image_url: str | list[str] | None = None
    result_url: str | None = None
    result_urls: list[str] = Field(default_factory=list)
    thumbnail_url: str | None = None
    points_cost: int = 0
    refunded: bool = False
    parameters: dict[str, Any] = Field(default_factory=dict)
    effect: str | None = None
    source: str | None = None
    create_time: datetime | None = None
    complete_time: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable_until: datetime | None = None
    queue_position: int | None = None
    estimated_start_time: datetime | None = None
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    result_type: str = "image"  # image | video
    duration_seconds: float | None = None
    resolution: str | None = None
    template_code: str | None = None
    template_version: int | None = None
    pricing: Pricing | None = None

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def provider_progress(self) -> int | None:
        """The provider's own progress (0-100) when the service reports it (`providerProgress`); `progress`
        is the service's estimate from the elapsed and the model's usual time."""
        value = (self.model_extra or {}).get("providerProgress")
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def image_urls(self) -> list[str]:
        if self.image_url is None:
            return []
        return [self.image_url] if isinstance(self.image_url, str) else list(self.image_url)


T = TypeVar("T")


class Page(ApiModel, Generic[T]):
    """One page of a list. `next_token` is set when the API pages by cursor."""

    records: list[T]
    total: int | None = None
    page: int | None = None
    size: int | None = None
    pages: int | None = None
    next_token: str | None = None


class Lot(ApiModel):
    """Points from one grant, purchase or bonus; `promotional` lots are spent before `paid` ones, earliest
    expiry first."""

    lot_id: str
    category: str
    source: str | None = None
    granted: int = 0
    remaining: int
    expire_time: datetime | None = None


class Balance(ApiModel):
    user_id: str
    balance: int
    expire_time: datetime | None = None  # the earliest expiry among the lots that hold points
    lots: list[Lot] = Field(default_factory=list)  # in spending order


class LotShare(ApiModel):
    lot_id: str
    points: int


class LedgerEntry(ApiModel):
    id: str | None = None
    type: str  # debit, refund, grant, purchase, expire, clawback
    amount: int
    ref: str | None = None
    task_no: str | None = None
    order_no: str | None = None
    reason: str | None = None
    create_time: datetime | None = None
    lot_id: str | None = None
    lots: list[LotShare] = Field(default_factory=list)


class PackPrice(ApiModel):
    amount: int  # in the currency's minor unit (cents, fen)
    currency: str

    @property
    def text(self) -> str:
        return f"{self.amount / 100:.2f} {self.currency.upper()}"


class Pack(ApiModel):
    pack_id: str
    name: str
    description: str | None = None
    points: int
    valid_days: int | None = None
    bonus_points: int = 0
    bonus_valid_days: int | None = None
    price: PackPrice


ORDER_FINAL_STATUSES = frozenset({"paid", "expired", "refunded", "disputed"})


class Order(ApiModel):
    """A pack bought through Stripe Checkout: `pending` until the payment provider's signed event says it is paid."""

    order_no: str
    status: str  # pending, paid, expired, refunded, disputed
    pack_id: str | None = None
    points: int = 0
    bonus_points: int = 0
    amount: int | None = None
    currency: str | None = None
    provider: str | None = None
    provider_session_id: str | None = None
    checkout_url: str | None = None
    create_time: datetime | None = None
    paid_time: datetime | None = None
    problem: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ORDER_FINAL_STATUSES


class ModelInputs(ApiModel):
    prompt: str
    min_images: int
    max_images: int


class ModelInfo(ApiModel):
    model_name: str
    description: str | None = None
    task_type: str
    provider: str | None = None
    points_cost: int
    pricing: dict[str, Any] = Field(default_factory=dict)
    aspect_ratio: str | None = None
    inputs: ModelInputs | None = None
    expected_seconds: float | None = None
    deadline_seconds: int | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class Upload(ApiModel):
    """A presigned POST: send `fields` plus the file to `url`; the object lands at `key`."""

    url: str
    fields: dict[str, str]
    key: str
    expires_in: int | None = None
    max_bytes: int | None = None


class ApiKey(ApiModel):
    """An API key as its owner sees it. `key` (the secret, `aigc_...`) is set only in the answer that created it."""

    key_id: str
    name: str
    prefix: str
    scopes: list[str]
    expire_time: datetime | None = None
    daily_points_limit: int | None = None
    models: list[str] | None = None
    create_time: datetime | None = None
    last_used_time: datetime | None = None
    expired: bool = False
    key: str | None = None
