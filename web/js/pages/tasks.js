// My tasks: the gallery of the user's tasks (thumbnails), filtered by status and type, paged with
// nextToken; cancel a running one, retry a failed or cancelled one, download results. Cards follow push.

import { api, newIdempotencyKey } from "../api.js";
import { clear, field, fill, h, put } from "../dom.js";
import { formatTime, t } from "../i18n.js";
import { FINAL, onLive } from "../live.js";
import { banner, downloadLink, errorBox, pageHead, refreshBalance, statusBadge, taskMedia } from "../ui.js";

const STATUSES = ["queued", "processing", "completed", "failed", "cancelled"];
const TYPES = ["outpainting", "text_to_image", "image_to_image", "text_to_video", "image_to_video"];

export async function render(main, params) {
  put(main, pageHead(t("tasks.title"), t("tasks.subtitle")));
  const status = h("select", { name: "status" }, h("option", { value: "" }, t("tasks.all")),
    STATUSES.map((s) => h("option", { value: s }, t(`status.${s}`))));
  const type = h("select", { name: "taskType" }, h("option", { value: "" }, t("tasks.all")),
    TYPES.map((s) => h("option", { value: s }, t(`type.${s}`))));
  status.value = params.get("status") || "";
  type.value = params.get("taskType") || "";
  const refresh = h("button", { type: "button", class: "secondary" }, t("tasks.refresh"));
  const filters = h("form", { class: "filters", role: "search", "aria-label": t("tasks.filters") },
    field(t("tasks.status"), status), field(t("tasks.type"), type), refresh);
  const summary = h("p", { class: "muted small", role: "status", "aria-live": "polite" });
  const gallery = h("div", { class: "gallery", "aria-label": t("tasks.title") });
  const more = h("div", { class: "more" });
  put(main, filters, summary, gallery, more);
  const cards = new Map();
  let nextToken = null;
  let generation = 0;

  function query() {
    return { size: 12, status: status.value, taskType: type.value, nextToken };
  }

  async function load(reset) {
    if (reset) {
      generation += 1; // an older list's answer, arriving after this one started, is dropped
      nextToken = null;
      cards.clear();
      clear(gallery);
      clear(more);
      summary.textContent = t("app.loading");
      const route = new URLSearchParams({ ...(status.value && { status: status.value }), ...(type.value && { taskType: type.value }) });
      history.replaceState(null, "", `#/tasks${route.toString() ? `?${route}` : ""}`);
    }
    const mine = generation;
    let page;
    try {
      page = await api.get("/user/ai/tasks/list", query());
    } catch (error) {
      if (mine !== generation) return;
      if (error.status !== 401) fill(more, errorBox(error));
      summary.textContent = "";
      return;
    }
    if (mine !== generation) return;
    for (const task of page.records) upsert(task, false);
    nextToken = page.nextToken;
    summary.textContent = page.total !== null && page.total !== undefined
      ? t("tasks.count", { n: page.total }) : t("tasks.shown", { n: cards.size });
    if (!cards.size) summary.textContent = t("tasks.none");
    clear(more);
    if (nextToken) {
      const button = h("button", { type: "button", class: "secondary" }, t("tasks.more"));
      button.addEventListener("click", () => load(false));
      put(more, button);
    }
  }

  function upsert(task, prepend) {
    const card = renderCard(task);
    const old = cards.get(task.taskNo);
    if (old) old.replaceWith(card);
    else if (prepend) gallery.prepend(card);
    else put(gallery, card);
    cards.set(task.taskNo, card);
  }

  function renderCard(task) {
    const media = taskMedia(task, { thumbnail: true });
    const input = !media && [task.imageUrl].flat().find((u) => typeof u === "string" && /^https?:/.test(u));
    const thumb = media ? h("div", { class: "thumb" }, media)
      : input ? h("div", { class: "thumb input" }, h("img", { src: input, alt: t("tasks.inputAlt"), loading: "lazy",
        onerror: (event) => event.target.remove() }),
        h("span", { class: "thumb-note" }, t("tasks.input")))
        : h("div", { class: "thumb" }, FINAL.includes(task.status) ? t("tasks.noImage") : t(`status.${task.status}`));
    const actions = h("div", { class: "actions" });
    const message = h("div", { role: "status" });
    if (task.status === "queued" || task.status === "processing") {
      const cancel = h("button", { type: "button", class: "danger small cancel" }, t("tasks.cancel"));
      cancel.addEventListener("click", () => act(task, "cancel", cancel, message));
      put(actions, cancel);
    }
    const rejected = (task.errorCode || "").startsWith("Rejected.");
    if ((task.status === "failed" || task.status === "cancelled") && !rejected && !task.retryableUntil) {
      const retry = h("button", { type: "button", class: "secondary small retry" }, t("tasks.retry"));
      retry.addEventListener("click", () => act(task, "retry", retry, message));
      put(actions, retry);
    }
    if (task.status === "completed" && task.resultUrl) put(actions, downloadLink(task));
    const details = h("details", {}, h("summary", {}, t("tasks.details")), h("dl", { class: "kv" },
      h("dt", {}, t("tasks.taskNo")), h("dd", { class: "mono" }, task.taskNo),
      task.effect ? [h("dt", {}, t("task.effect")), h("dd", {}, task.effect)] : null,
      task.promptSnippet ? [h("dt", {}, t("create.prompt")), h("dd", {}, task.promptSnippet)] : null,
      task.errorMessage ? [h("dt", {}, t("tasks.error")), h("dd", {}, task.errorMessage, task.errorCode ? ` (${task.errorCode})` : "")] : null,
      task.retryableUntil ? [h("dt", {}, t("tasks.held")), h("dd", {}, t("tasks.heldUntil", { time: formatTime(task.retryableUntil) }))] : null,
      h("dt", {}, t("tasks.source")), h("dd", {}, task.source || "api"),
    ));
    return h("article", { class: "card task-card", dataset: { taskNo: task.taskNo, status: task.status }, "aria-label": `${task.modelName} ${task.taskNo}` },
      thumb,
      h("div", { class: "body" },
        h("div", { class: "badges" }, statusBadge(task.status), task.refunded ? h("span", { class: "small muted" }, t("task.refunded")) : null),
        h("div", { class: "title" }, task.modelName),
        h("div", { class: "meta" }, formatTime(task.createTime), " · ", t("points.n", { n: task.pointsCost })),
        task.status === "processing" || task.status === "queued"
          ? h("progress", { max: 100, value: task.progress || 0, "aria-label": t("task.progress") }) : null,
        task.errorMessage && task.status === "failed" ? h("div", { class: "meta" }, task.errorMessage) : null,
        details, message, actions));
  }

  async function act(task, action, button, message) {
    button.disabled = true;
    clear(message);
    try {
      const options = action === "retry" ? { headers: { "Idempotency-Key": newIdempotencyKey() } } : undefined;
      const result = await api.post(`/user/ai/tasks/${encodeURIComponent(task.taskNo)}/${action}`, undefined, options);
      if (action === "retry") {
        upsert(result, true);
        banner(t("tasks.retried", { taskNo: result.taskNo }), "ok", { timeout: 6000 });
      } else {
        upsert(result, false);
      }
      refreshBalance();
    } catch (error) {
      button.disabled = false;
      if (error.status !== 401) put(message, errorBox(error));
    }
  }

  status.addEventListener("change", () => load(true));
  type.addEventListener("change", () => load(true));
  refresh.addEventListener("click", () => load(true));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    load(true);
  });
  const stop = onLive("task", (task) => {
    if (cards.has(task.taskNo)) upsert(task, false);
    else if ((!status.value || status.value === task.status) && (!type.value || type.value === task.taskType)) upsert(task, true);
  });
  await load(true);
  return stop;
}
