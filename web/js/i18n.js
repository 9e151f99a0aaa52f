// UI strings: one small JSON dictionary per language (i18n/<lang>.json). The API's own messages come
// in the same language because every request sends Accept-Language (docs/api-guide.md).

export const LANGUAGES = ["en", "zh-CN"];
let strings = {};
let fallback = {};
let current = "en";

// The server has a catalog for Simplified Chinese only: zh, zh-CN, zh-SG, zh-Hans; zh-TW/HK/Hant are not it.
function fromBrowser() {
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const lower = tag.toLowerCase();
    if (lower.startsWith("zh")) {
      if (/^zh(-hant|-tw|-hk|-mo)/.test(lower)) continue;
      return "zh-CN";
    }
    if (lower.startsWith("en")) return "en";
  }
  return "en";
}

export function preferredLanguage() {
  const saved = localStorage.getItem("aigc.lang");
  return LANGUAGES.includes(saved) ? saved : fromBrowser();
}

async function load(lang) {
  const response = await fetch(`i18n/${lang}.json`, { cache: "no-cache" });
  if (!response.ok) throw new Error(`i18n/${lang}.json: ${response.status}`);
  return response.json();
}

export async function setLanguage(lang, { save = false } = {}) {
  if (!LANGUAGES.includes(lang)) lang = "en";
  if (!Object.keys(fallback).length) fallback = await load("en");
  strings = lang === "en" ? fallback : await load(lang).catch(() => fallback);
  current = lang;
  if (save) localStorage.setItem("aigc.lang", lang);
  document.documentElement.lang = lang;
  translate(document);
}

export function language() {
  return current;
}

// t("tasks.count", {n: 3}) -> "3 tasks"; a missing key falls back to English, then to the key.
export function t(key, values) {
  let text = strings[key] ?? fallback[key] ?? key;
  if (values) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in values ? String(values[name]) : m));
  return text;
}

export function has(key) {
  return key in strings || key in fallback;
}

export function translate(root) {
  root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(current, { dateStyle: "medium", timeStyle: "short" });
}

export function formatNumber(value, options) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString(current, options);
}

export function formatPercent(value) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString(current, { style: "percent", maximumFractionDigits: 1 });
}

export function formatMoney(amount, currency) {
  const code = (currency || "usd").toUpperCase();
  const digits = ["JPY", "KRW"].includes(code) ? 0 : 2;
  try {
    return (amount / 10 ** digits).toLocaleString(current, { style: "currency", currency: code });
  } catch {
    return `${(amount / 10 ** digits).toFixed(digits)} ${code}`;
  }
}
