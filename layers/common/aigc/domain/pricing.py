"""Pricing rules (data: `aigc.core.catalog.Pricing`, on a model or a template) evaluated once, at submit.

A price is the base (`points`), times the images (`perImage`: the parameter `n`) or the seconds of
video (`perSecond`: the duration parameter it names), times every multiplier whose parameter matches
(seed 000's HD mode x2, seed 002's 4k x1.5), plus every matching surcharge, rounded up to whole
points. The same function prices a quote, a submit and a retry, so a quote is what the submit
charges; the task keeps the breakdown it was charged (`Price.as_dict()`), so a later change of the
rules never changes an accepted task.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from aigc.core.catalog import Pricing


@dataclass(frozen=True)
class Factor:
    kind: str  # perImage | perSecond | multiplier | surcharge
    label: str
    factor: float | None = None  # what the amount was multiplied by
    points: float | None = None  # what was added

    def as_dict(self) -> dict:
        data: dict = {"kind": self.kind, "label": self.label}
        if self.factor is not None:
            data["factor"] = self.factor
        if self.points is not None:
            data["points"] = self.points
        return data


@dataclass(frozen=True)
class Price:
    base: int
    factors: tuple[Factor, ...]
    total: int

    def as_dict(self) -> dict:
        """The submit answer's `pricing` (and the task record's): `{base, factors: [...], total}`."""
        return {"base": self.base, "factors": [factor.as_dict() for factor in self.factors], "total": self.total}


def _number(value) -> Decimal:
    return Decimal(str(value))


def _plain(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def _rule_label(rule) -> str:
    if rule.label:
        return rule.label
    shown = rule.one_of if rule.one_of is not None else rule.equals
    return f"{rule.parameter} {'in' if rule.one_of is not None else '='} {shown}"


def _units(pricing: Pricing, parameters: dict) -> list[Factor]:
    factors = []
    if pricing.per_image:
        images = parameters.get("n", 1)
        images = images if isinstance(images, int) and not isinstance(images, bool) and images > 0 else 1
        factors.append(Factor("perImage", f"{images} image{'s' if images != 1 else ''}", factor=images))
    if pricing.per_second:
        seconds = parameters.get(pricing.per_second)
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
            raise ValueError(f"per-second pricing needs the parameter {pricing.per_second!r}")
        factors.append(Factor("perSecond", f"{_plain(_number(seconds))} seconds", factor=_plain(_number(seconds))))
    return factors


def quote(pricing: Pricing, parameters: dict) -> Price:
    """The price of one task with these provider (snake_case) parameters, and why."""
    factors = _units(pricing, parameters)
    factors += [Factor("multiplier", _rule_label(rule), factor=rule.factor)
                for rule in pricing.multipliers if rule.matches(parameters)]
    factors += [Factor("surcharge", _rule_label(rule), points=rule.points)
                for rule in pricing.surcharges if rule.matches(parameters)]
    amount = _number(pricing.points)
    for factor in factors:
        if factor.factor is not None:
            amount *= _number(factor.factor)
    for factor in factors:
        if factor.points is not None:
            amount += _number(factor.points)
    return Price(base=pricing.points, factors=tuple(factors), total=int(math.ceil(amount)))


def describe(pricing: Pricing) -> list[str]:
    """Each rule in a sentence, for GET /models and GET /templates."""
    unit = "per task"
    if pricing.per_image:
        unit = "per image (n)"
    elif pricing.per_second:
        unit = f"per second of video ({pricing.per_second})"
    lines = [f"{pricing.points} points {unit}"]
    for rule in pricing.multipliers:
        lines.append(f"x{_plain(_number(rule.factor))} when {_condition(rule)}" + (f": {rule.label}" if rule.label else ""))
    for rule in pricing.surcharges:
        lines.append(f"+{_plain(_number(rule.points))} points when {_condition(rule)}"
                     + (f": {rule.label}" if rule.label else ""))
    lines.append("rounded up to whole points")
    return lines


def _condition(rule) -> str:
    if rule.one_of is not None:
        return f"{rule.parameter} is one of {', '.join(map(str, rule.one_of))}"
    shown = str(rule.equals).lower() if isinstance(rule.equals, bool) else rule.equals
    return f"{rule.parameter} is {shown}"
