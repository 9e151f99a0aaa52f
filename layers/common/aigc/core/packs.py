"""Point packs: what a user can buy, as data (`packs.json`, next to the model catalog).

A pack gives `points` as a paid lot that lasts `validDays` (null: never expires) and optionally
`bonusPoints` as a promotional lot with its own `bonusValidDays`. The price is in the currency's
minor unit (cents, fen), as Stripe takes it. Adding or repricing a pack is an edit here, not code;
an order keeps the pack's terms as they were when it was created.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from aigc.core.errors import NotFound
from aigc.core.i18n import _


class Price(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: int = Field(gt=0, description="in the currency's minor unit (cents, fen)")
    currency: str = Field(pattern=r"^[a-z]{3}$", description="ISO 4217, lower case (Stripe's form)")


class Pack(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    pack_id: str = Field(alias="packId", pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    points: int = Field(gt=0)
    price: Price
    valid_days: int | None = Field(alias="validDays", ge=1, le=3650)
    bonus_points: int = Field(0, alias="bonusPoints", ge=0)
    bonus_valid_days: int | None = Field(alias="bonusValidDays", ge=1, le=3650)


@lru_cache(maxsize=1)
def load_packs() -> dict[str, Pack]:
    raw = json.loads(Path(__file__).with_name("packs.json").read_text(encoding="utf-8"))
    packs = [Pack.model_validate({**raw["defaults"], **entry}) for entry in raw["packs"]]
    found = {pack.pack_id: pack for pack in packs}
    if len(found) != len(packs):
        raise ValueError("packs.json: a packId is used twice")
    return found


def get_pack(pack_id: str) -> Pack:
    try:
        return load_packs()[pack_id]
    except KeyError:
        raise NotFound(_("unknown pack '{pack_id}'; GET /points/packs lists the packs", pack_id=pack_id)) from None
