// Forms generated from a JSON schema (GET /models' `parameters`, GET /templates' `inputs`): one field per
// property, its type, bounds and choices from the schema; labels and hints from the UI dictionary when
// it has them (param.<name>), else the schema's title and description.

import { field, h, put, setFieldError } from "./dom.js";
import { has, t } from "./i18n.js";

// A property's own type, enum and bounds, looking through `anyOf: [{...}, {type: "null"}]` (optional).
export function describe(schema) {
  let spec = schema;
  let nullable = false;
  if (Array.isArray(schema.anyOf)) {
    nullable = schema.anyOf.some((s) => s.type === "null");
    spec = schema.anyOf.find((s) => s.type !== "null") || {};
  }
  const type = spec.enum ? "enum" : spec.type || (typeof schema.default === "boolean" ? "boolean" : "string");
  return {
    type,
    nullable,
    choices: spec.enum || null,
    min: spec.minimum ?? spec.ge ?? spec.exclusiveMinimum,
    max: spec.maximum ?? spec.le ?? spec.exclusiveMaximum,
    maxLength: spec.maxLength,
    minLength: spec.minLength,
    default: schema.default ?? spec.default,
    title: schema.title || spec.title,
    description: schema.description || spec.description,
  };
}

export function labelFor(name, info) {
  return has(`param.${name}`) ? t(`param.${name}`) : info.title || name.replace(/_/g, " ");
}

function hintFor(name, info) {
  const parts = [];
  if (has(`param.${name}.hint`)) parts.push(t(`param.${name}.hint`));
  else if (info.description) parts.push(info.description);
  if ((info.type === "integer" || info.type === "number") && (info.min !== undefined || info.max !== undefined)) {
    parts.push(t("form.range", { min: info.min ?? "…", max: info.max ?? "…" }));
  }
  return parts.join(" · ");
}

function choiceLabel(name, value) {
  if (value === "") return t("form.none");
  const key = `param.${name}.${value}`;
  return has(key) ? t(key) : String(value);
}

// One field: {name, info, wrap, control, read(), write(v)}.
export function buildField(name, schema, { required = false } = {}) {
  const info = describe(schema);
  let control;
  if (info.type === "boolean") {
    control = h("input", { type: "checkbox", name });
    control.checked = Boolean(info.default);
  } else if (info.type === "enum") {
    control = h("select", { name });
    if (info.nullable || (!required && info.default === undefined)) put(control, h("option", { value: "" }, t("form.default")));
    for (const value of info.choices) put(control, h("option", { value: String(value) }, choiceLabel(name, value)));
    if (info.default !== undefined && info.default !== null) control.value = String(info.default);
  } else if (info.type === "integer" || info.type === "number") {
    control = h("input", {
      type: "number", name, inputmode: info.type === "integer" ? "numeric" : "decimal",
      step: info.type === "integer" ? "1" : "any", min: info.min, max: info.max,
    });
    if (info.default !== undefined && info.default !== null) control.value = String(info.default);
    else control.placeholder = t("form.optional");
  } else {
    const long = (info.maxLength || 0) > 200 || /prompt/.test(name);
    control = long ? h("textarea", { name, maxlength: info.maxLength, rows: 2 })
      : h("input", { type: "text", name, maxlength: info.maxLength });
    if (info.default) control.value = String(info.default);
    if (!required) control.placeholder = t("form.optional");
  }
  if (required) control.required = true;
  const wrap = field(labelFor(name, info), control, { hint: hintFor(name, info), check: info.type === "boolean", name });

  const read = () => {
    if (info.type === "boolean") return control.checked;
    const raw = control.value.trim();
    if (raw === "") return info.type === "enum" && info.choices.includes("") && !info.nullable ? "" : undefined;
    if (info.type === "integer" || info.type === "number") return Number(raw);
    if (info.type === "enum") {
      const found = info.choices.find((c) => String(c) === raw);
      return found === undefined ? raw : found;
    }
    return raw;
  };
  const write = (value) => {
    if (info.type === "boolean") control.checked = Boolean(value);
    else control.value = value === undefined || value === null ? "" : String(value);
  };
  return { name, info, wrap, control, read, write, required };
}

// Check one field's value against its schema; the message, or "" when it is fine.
export function checkField(f) {
  const value = f.read();
  if (value === undefined || value === "") return f.required ? t("form.required") : "";
  if (f.info.type === "integer" || f.info.type === "number") {
    if (!Number.isFinite(value)) return t("form.number");
    if (f.info.type === "integer" && !Number.isInteger(value)) return t("form.integer");
    if ((f.info.min !== undefined && value < f.info.min) || (f.info.max !== undefined && value > f.info.max)) {
      return t("form.range", { min: f.info.min ?? "…", max: f.info.max ?? "…" });
    }
  }
  if (typeof value === "string" && f.info.minLength && value.length < f.info.minLength) return t("form.required");
  return "";
}

// The values worth sending: set, and (unless `all`) different from the schema's default.
export function collect(fields, { all = false } = {}) {
  const out = {};
  for (const f of fields) {
    const value = f.read();
    if (value === undefined) continue;
    if (!all && !f.required && value === f.info.default) continue;
    out[f.name] = value;
  }
  return out;
}

export function validate(fields) {
  let first = null;
  for (const f of fields) {
    const message = checkField(f);
    setFieldError(f.wrap, message);
    if (message && !first) first = f;
  }
  return first;
}

// "parameters.xScale" / "parameters.x_scale" / "inputs.subject" -> the field it names, or null.
export function fieldNamed(fields, path) {
  const last = path.split(".").pop().replace(/\[\d+\]$/, "");
  const snake = last.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return fields.find((f) => f.name === last || f.name === snake) || null;
}
