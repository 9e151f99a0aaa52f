// Seed 003's outpainting rules, next to the fields they govern: rotation (angle) always applies, first;
// then exactly one expansion mode, by priority: output_ratio (1) > x_scale/y_scale (2) > the four offsets (3).
// The preview says what the provider will do with the values as they stand, as the task's `effect` will.

import { h, put } from "./dom.js";
import { t } from "./i18n.js";

export const GROUPS = [
  { key: "rotate", names: ["angle"] },
  { key: "ratio", names: ["output_ratio"], priority: 1 },
  { key: "scale", names: ["x_scale", "y_scale"], priority: 2 },
  { key: "offset", names: ["left_offset", "right_offset", "top_offset", "bottom_offset"], priority: 3 },
  { key: "output", names: ["best_quality", "limit_image_size", "add_watermark"] },
];

export function isOutpainting(model) {
  const names = Object.keys(model?.parameters?.properties || {});
  return ["output_ratio", "x_scale", "left_offset"].every((n) => names.includes(n));
}

function active(values) {
  return {
    ratio: Boolean(values.output_ratio),
    scale: (values.x_scale ?? 1) > 1 || (values.y_scale ?? 1) > 1,
    offset: ["left_offset", "right_offset", "top_offset", "bottom_offset"].some((n) => (values[n] ?? 0) > 0),
  };
}

// {winner: "ratio"|"scale"|"offset"|null, ignored: [...], angle, text}
export function effect(values) {
  const on = active(values);
  const order = ["ratio", "scale", "offset"];
  const winner = order.find((k) => on[k]) || null;
  const ignored = order.filter((k) => on[k] && k !== winner);
  const angle = Number(values.angle || 0);
  const parts = [];
  if (angle) parts.push(t("op.effect.rotate", { angle }));
  if (winner === "ratio") parts.push(t("op.effect.ratio", { ratio: values.output_ratio }));
  if (winner === "scale") parts.push(t("op.effect.scale", { x: values.x_scale ?? 1, y: values.y_scale ?? 1 }));
  if (winner === "offset") {
    parts.push(t("op.effect.offset", {
      left: values.left_offset ?? 0, right: values.right_offset ?? 0,
      top: values.top_offset ?? 0, bottom: values.bottom_offset ?? 0,
    }));
  }
  let text = parts.length ? t("op.effect.will", { what: parts.join(t("op.effect.then")) }) : t("op.effect.nothing");
  if (ignored.length) text += ` ${t("op.effect.ignored", { what: ignored.map((k) => t(`op.${k}.title`)).join(", ") })}`;
  if ([90, 180, 270].includes(angle)) text += ` ${t("op.effect.rightAngle")}`;
  return { winner, ignored, angle, text };
}

// Lay the fields out in their groups, each with its rule; returns update(values) to refresh the notes.
export function layout(container, fieldsByName) {
  const sets = {};
  for (const group of GROUPS) {
    const present = group.names.filter((n) => fieldsByName[n]);
    if (!present.length) continue;
    const title = group.priority ? t("op.priority", { n: group.priority, what: t(`op.${group.key}.title`) }) : t(`op.${group.key}.title`);
    const note = h("p", { class: "group-note", id: `op-note-${group.key}` }, t(`op.${group.key}.rule`));
    const grid = h("div", { class: "fields-2" }, present.map((n) => fieldsByName[n].wrap));
    const set = h("fieldset", { class: `op-group op-${group.key}`, "aria-describedby": note.id },
      h("legend", {}, title), note, grid);
    sets[group.key] = { set, note, group };
    put(container, set);
  }
  const preview = h("p", { class: "effect-preview", role: "status", "aria-live": "polite" });
  container.prepend(preview);
  return (values) => {
    const result = effect(values);
    preview.textContent = result.text;
    for (const key of ["ratio", "scale", "offset"]) {
      const entry = sets[key];
      if (!entry) continue;
      const overridden = result.ignored.includes(key);
      entry.set.classList.toggle("overridden", overridden);
      entry.note.textContent = overridden
        ? t("op.overriddenBy", { what: t(`op.${result.winner}.title`) })
        : t(`op.${key}.rule`);
    }
    return result;
  };
}
