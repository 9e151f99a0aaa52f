// The catalog price of a request, for when the deployment has no quote route (POST /user/ai/tasks/quote):
// the same rules as aigc.domain.pricing (base, per image or second, multipliers, surcharges, rounded up).

function matches(rule, parameters) {
  const value = parameters[rule.parameter];
  const oneOf = rule.in ?? rule.oneOf ?? rule.one_of;
  if (Array.isArray(oneOf)) return oneOf.includes(value);
  return value === rule.equals;
}

export function catalogPrice(model, parameters) {
  const pricing = model.pricing || { points: model.pointsCost };
  let amount = Number(pricing.points ?? model.pointsCost);
  const factors = [];
  if (pricing.perImage) {
    const n = Number.isInteger(parameters.n) && parameters.n > 0 ? parameters.n : 1;
    amount *= n;
    factors.push({ kind: "perImage", factor: n, label: `${n}` });
  }
  const perSecond = pricing.perSecond || pricing.per_second;
  if (perSecond) {
    const fallback = model.video?.durations?.[0] ?? 5;
    const seconds = Number(parameters[perSecond] ?? fallback);
    amount *= seconds;
    factors.push({ kind: "perSecond", factor: seconds, label: `${seconds}` });
  }
  for (const rule of pricing.multipliers || []) {
    if (matches(rule, parameters)) {
      amount *= rule.factor;
      factors.push({ kind: "multiplier", factor: rule.factor, label: rule.label || rule.parameter });
    }
  }
  for (const rule of pricing.surcharges || []) {
    if (matches(rule, parameters)) {
      amount += rule.points;
      factors.push({ kind: "surcharge", points: rule.points, label: rule.label || rule.parameter });
    }
  }
  return { base: Number(pricing.points ?? model.pointsCost), factors, total: Math.ceil(amount - 1e-9) };
}

// "10 × 2 (HD mode) = 20"
export function explain(pricing) {
  if (!pricing || !pricing.factors?.length) return "";
  const parts = [String(pricing.base)];
  for (const factor of pricing.factors) {
    if (factor.factor !== undefined && factor.factor !== null) parts.push(`× ${factor.factor} (${factor.label})`);
    if (factor.points !== undefined && factor.points !== null) parts.push(`+ ${factor.points} (${factor.label})`);
  }
  return `${parts.join(" ")} = ${pricing.total}`;
}
