// Pieces every page uses: the banner, error boxes (a 402 links to Points), status badges, task media,
// the header's balance, and the model catalog (read once).

import { api } from "./api.js";
import { clear, h, put } from "./dom.js";
import { formatNumber, t } from "./i18n.js";
import { onLive } from "./live.js";

export function banner(message, kind = "info", { timeout = 0 } = {}) {
  const el = document.getElementById("banner");
  clear(el);
  if (!message) {
    el.hidden = true;
    return;
  }
  el.className = `banner ${kind}`;
  put(el, message instanceof Node ? message : document.createTextNode(message));
  el.hidden = false;
  if (timeout) setTimeout(() => { if (el.contains(message instanceof Node ? message : el.firstChild)) el.hidden = true; }, timeout);
}

// The message of an API error as the user should read it, with what to do next.
export function errorContent(error) {
  const parts = [h("span", {}, error.message || String(error))];
  if (error.status === 402) {
    parts.push(" ", h("a", { href: "#/points", class: "buy-link" }, t("error.buyPoints")));
  } else if (error.status === 429 && error.retryAfter) {
    parts.push(" ", t("error.retryAfter", { seconds: error.retryAfter }));
  } else if (error.status === 0) {
    parts.push(" ", t("error.network"));
  } else if (error.status >= 500) {
    parts.push(" ", t("error.server"));
  }
  return parts;
}

export function errorBox(error) {
  return h("div", { class: "error-box", role: "alert" }, errorContent(error));
}

export function showError(container, error) {
  clear(container);
  container.hidden = false;
  put(container, ...errorContent(error));
}

export function statusBadge(status) {
  return h("span", { class: `status ${status}`, "data-status": status }, t(`status.${status}`));
}

// The result (image or video), linked to open; the thumbnail when asked for (galleries).
export function taskMedia(task, { thumbnail = false } = {}) {
  const url = thumbnail ? task.thumbnailUrl || task.resultUrl : task.resultUrl;
  if (!url) return null;
  if (task.resultType === "video" && !thumbnail) {
    return h("video", { class: "result-media", src: url, controls: true, preload: "metadata", "aria-label": t("task.result") });
  }
  if (task.resultType === "video" && !task.thumbnailUrl) {
    return h("video", { src: url, muted: true, preload: "metadata", "aria-label": t("task.result") });
  }
  return h("img", {
    src: url, alt: t("task.resultAlt", { model: task.modelName, taskNo: task.taskNo }),
    loading: "lazy", class: thumbnail ? "" : "result-media",
  });
}

// A download that works across origins: fetch the presigned URL and save the blob (the `download`
// attribute alone is ignored for another origin); falls back to opening it.
export function downloadLink(task, url = task.resultUrl, index = 0) {
  const ext = task.resultType === "video" ? "mp4" : (new URL(url).pathname.match(/\.(png|jpe?g|webp|mp4)$/i)?.[1] || "png");
  const name = `${task.taskNo}${index ? `-${index + 1}` : ""}.${ext}`;
  const link = h("a", { href: url, download: name, class: "button small secondary download", rel: "noopener" }, t("task.download"));
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    try {
      const response = await fetch(url);
      if (!response.ok) throw new Error(String(response.status));
      const blob = URL.createObjectURL(await response.blob());
      const a = h("a", { href: blob, download: name });
      put(document.body, a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(blob), 10000);
    } catch {
      window.open(url, "_blank", "noopener");
    }
  });
  return link;
}

// ------------------------------------------------------------------ header balance
let balanceWatch = null;
export async function refreshBalance() {
  const pill = document.querySelector(".balance-pill");
  try {
    const balance = await api.get("/user/points/consumption/balance");
    showBalance(balance);
    return balance;
  } catch {
    pill.hidden = true;
    return null;
  }
}

export function showBalance(balance) {
  const pill = document.querySelector(".balance-pill");
  pill.querySelector(".balance-value").textContent = formatNumber(balance.balance);
  pill.setAttribute("aria-label", t("points.balanceLabel", { n: balance.balance }));
  pill.hidden = false;
  pill.dataset.balance = String(balance.balance);
  document.dispatchEvent(new CustomEvent("aigc:balance", { detail: balance }));
}

export function followBalance() {
  if (!balanceWatch) balanceWatch = onLive("points", showBalance);
}

export function currentBalance() {
  const value = document.querySelector(".balance-pill")?.dataset.balance;
  return value === undefined ? null : Number(value);
}

// ------------------------------------------------------------------ the catalog
let models = null;
export async function loadModels() {
  if (!models) models = await api.get("/models", null, { auth: false });
  return models;
}

export function modelLabel(name) {
  return name;
}

export function pageHead(title, subtitle) {
  return h("div", { class: "page-head" }, h("h1", {}, title), subtitle ? h("p", {}, subtitle) : null);
}
