// The operator console (admins; the API refuses everyone else with 403): the business numbers as charts
// (GET /admin/stats), the task search (GET /admin/tasks) with a task's ledger and execution, the tasks held
// for a redrive with a refund button, grants (POST /admin/points/grant) and a user lookup (GET /admin/users).

import * as auth from "../auth.js";
import { api, newIdempotencyKey, routeMissing } from "../api.js";
import { lineChart } from "../charts.js";
import { clear, clearErrors, field, fill, h, put, setFieldError } from "../dom.js";
import { formatNumber, formatPercent, formatTime, t } from "../i18n.js";
import { errorBox, loadModels, pageHead, statusBadge } from "../ui.js";

const TABS = ["overview", "search", "held", "grant", "user"];
const HELD_CODE = "InternalError.Retryable";

export async function render(main, params) {
  put(main, pageHead(t("console.title"), t("console.subtitle")));
  if (auth.hasAdminSignIn() && !auth.session("admin")) {
    const go = h("button", { type: "button" }, t("console.adminSignIn"));
    go.addEventListener("click", () => {
      auth.rememberReturn("#/console");
      auth.startOidc("admin");
    });
    put(main, h("section", { class: "panel" }, h("p", {}, t("console.adminSignInNote")), go));
    return null;
  }
  const active = TABS.includes(params.get("tab")) ? params.get("tab") : "overview";
  const tablist = h("div", { class: "tabs", role: "tablist", "aria-label": t("console.title") });
  const panels = {};
  const buttons = {};
  for (const tab of TABS) {
    buttons[tab] = h("button", {
      type: "button", role: "tab", id: `tab-${tab}`, "aria-controls": `panel-${tab}`,
      "aria-selected": String(tab === active), tabindex: tab === active ? "0" : "-1",
    }, t(`console.tab.${tab}`));
    buttons[tab].addEventListener("click", () => select(tab));
    buttons[tab].addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = TABS[(TABS.indexOf(tab) + step + TABS.length) % TABS.length];
      select(next);
      buttons[next].focus();
    });
    put(tablist, buttons[tab]);
    panels[tab] = h("section", { role: "tabpanel", id: `panel-${tab}`, "aria-labelledby": `tab-${tab}`, hidden: tab !== active });
  }
  put(main, tablist, ...Object.values(panels));
  const loaded = new Set();
  const builders = { overview, search, held, grant, user };

  function select(tab) {
    for (const other of TABS) {
      buttons[other].setAttribute("aria-selected", String(other === tab));
      buttons[other].tabIndex = other === tab ? 0 : -1;
      panels[other].hidden = other !== tab;
    }
    history.replaceState(null, "", `#/console?tab=${tab}`);
    if (!loaded.has(tab)) {
      loaded.add(tab);
      builders[tab](panels[tab], params).catch((error) => put(panels[tab], errorBox(error)));
    }
  }
  select(active);
  return null;
}

function unavailable(error) {
  return routeMissing(error) ? h("div", { class: "info-box" }, t("console.notDeployed")) : errorBox(error);
}

// ------------------------------------------------------------------ overview: the business numbers
const RANGES = {
  day: { bucket: "hour", hours: 24 },
  week: { bucket: "hour", hours: 24 * 7 },
  month: { bucket: "day", hours: 24 * 30 },
};

async function overview(panel) {
  const range = h("select", { name: "range" }, Object.keys(RANGES).map((key) => h("option", { value: key }, t(`console.range.${key}`))));
  const refresh = h("button", { type: "button", class: "secondary" }, t("tasks.refresh"));
  const body = h("div", { class: "stats-body" });
  put(panel, h("div", { class: "filters" }, field(t("console.range"), range), refresh), body);
  let generation = 0; // the newest range asked for: an older answer, arriving later, is dropped
  const load = async () => {
    const mine = ++generation;
    fill(body, h("p", { class: "muted" }, t("app.loading")));
    const chosen = RANGES[range.value];
    const now = new Date();
    const from = new Date(now.getTime() - chosen.hours * 3600 * 1000);
    if (chosen.bucket === "hour") from.setUTCMinutes(0, 0, 0);
    else from.setUTCHours(0, 0, 0, 0);
    let stats;
    try {
      stats = await api.get("/admin/stats", { bucket: chosen.bucket, from: from.toISOString() });
    } catch (error) {
      if (mine === generation) fill(body, unavailable(error));
      return;
    }
    if (mine === generation) await paintStats(body, stats);
  };
  range.addEventListener("change", load);
  refresh.addEventListener("click", load);
  await load();
}

function kpi(name, label, value, shown) {
  return h("div", { class: "kpi", dataset: { kpi: name, value: value ?? "" } },
    h("div", { class: "kpi-value" }, shown ?? formatNumber(value)), h("div", { class: "kpi-label" }, label));
}

async function paintStats(body, stats) {
  const total = stats.totals.tasks;
  const points = stats.totals.points || {};
  const p95 = total.totalSeconds?.p95;
  fill(body, 
    h("p", { class: "small muted" }, t("console.window", { from: formatTime(stats.from), to: formatTime(stats.to) })),
    h("div", { class: "kpis" },
      kpi("created", t("console.kpi.created"), total.created),
      kpi("completed", t("console.kpi.completed"), total.completed),
      kpi("failed", t("console.kpi.failed"), total.failed),
      kpi("cancelled", t("console.kpi.cancelled"), total.cancelled),
      kpi("successRate", t("console.kpi.successRate"), total.successRate, formatPercent(total.successRate)),
      kpi("refundRate", t("console.kpi.refundRate"), total.refundRate, formatPercent(total.refundRate)),
      kpi("p95", t("console.kpi.p95"), p95, p95 === null || p95 === undefined ? "–" : `${formatNumber(p95, { maximumFractionDigits: 1 })} s`),
      kpi("debited", t("console.kpi.debited"), points.debited ?? total.pointsDebited),
      kpi("refunded", t("console.kpi.refundedPoints"), points.refunded ?? total.pointsRefunded),
      kpi("granted", t("console.kpi.granted"), points.granted),
      kpi("bought", t("console.kpi.bought"), points.bought),
      kpi("activeUsers", t(`console.kpi.activeUsers.${stats.bucket}`),
        Math.max(0, ...stats.buckets.map((b) => b.tasks.activeUsers || 0))),
    ),
  );
  const xs = stats.buckets.map((b) => Date.parse(b.start) / 1000);
  const series = (pick) => stats.buckets.map(pick);
  const charts = h("div", { class: "charts" });
  const box = (id, title) => {
    const el = h("div", { class: "chart", id });
    put(charts, h("div", { class: "panel" }, h("h3", {}, title), el));
    return el;
  };
  put(body, charts);
  const tasksBox = box("chart-tasks", t("console.chart.tasks"));
  const ratesBox = box("chart-rates", t("console.chart.rates"));
  const pointsBox = box("chart-points", t("console.chart.points"));
  try {
    await lineChart(tasksBox, { xs, title: t("console.chart.tasks"), series: [
      { label: t("console.kpi.created"), values: series((b) => b.tasks.created) },
      { label: t("console.kpi.completed"), values: series((b) => b.tasks.completed) },
      { label: t("console.kpi.failed"), values: series((b) => b.tasks.failed) },
      { label: t("console.kpi.cancelled"), values: series((b) => b.tasks.cancelled) },
    ] });
    await lineChart(ratesBox, { xs, percent: true, title: t("console.chart.rates"), series: [
      { label: t("console.kpi.successRate"), values: series((b) => b.tasks.successRate) },
      { label: t("console.kpi.refundRate"), values: series((b) => b.tasks.refundRate) },
    ] });
    const flows = ["debited", "refunded", "granted", "bought", "expired"];
    await lineChart(pointsBox, { xs, title: t("console.chart.points"), series: flows.map((flow) => ({
      label: t(`console.flow.${flow}`), values: series((b) => b.points?.[flow] ?? 0),
    })) });
  } catch (error) {
    put(charts, errorBox(error));
  }

  // p95 per model, with bars to compare
  const models = stats.totals.models || [];
  const longest = Math.max(1, ...models.map((m) => m.totalSeconds?.p95 || 0));
  const rows = models.map((m) => {
    const bar = h("span", { class: "bar" });
    bar.style.width = `${Math.round(((m.totalSeconds?.p95 || 0) / longest) * 100)}%`;
    return h("tr", { dataset: { model: m.modelName } },
      h("th", { scope: "row" }, m.modelName),
      h("td", { class: "num" }, formatNumber(m.created)),
      h("td", { class: "num" }, formatNumber(m.completed)),
      h("td", { class: "num" }, formatNumber(m.failed)),
      h("td", { class: "num" }, formatPercent(m.successRate)),
      h("td", { class: "num" }, seconds(m.totalSeconds?.p50)),
      h("td", { class: "num" }, seconds(m.totalSeconds?.p95)),
      h("td", { class: "bar-cell hide-phone" }, bar),
      h("td", { class: "small hide-phone" }, (m.topErrors || []).map((e) => `${e.code} ×${e.count}`).join(", ")));
  });
  put(body, h("section", { class: "panel" }, h("h3", {}, t("console.perModel")), h("div", { class: "table-wrap" }, h("table", { id: "per-model" },
    h("thead", {}, h("tr", {}, [t("console.model"), t("console.kpi.created"), t("console.kpi.completed"), t("console.kpi.failed"),
      t("console.kpi.successRate"), "p50", "p95"].map((label, i) => h("th", { scope: "col", class: i ? "num" : "" }, label)),
    h("th", { scope: "col", class: "hide-phone" }, t("console.p95Bar")), h("th", { scope: "col", class: "hide-phone" }, t("console.topErrors")))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 9, class: "muted" }, t("console.noTasks")))))),
  h("p", { class: "small muted" }, stats.resolution)));
}

function seconds(value) {
  return value === null || value === undefined ? "–" : `${formatNumber(value, { maximumFractionDigits: 1 })} s`;
}

// ------------------------------------------------------------------ the task search
async function search(panel) {
  const models = await loadModels().catch(() => []);
  const status = h("select", { name: "status" }, h("option", { value: "" }, t("tasks.all")),
    ["queued", "processing", "completed", "failed", "cancelled"].map((s) => h("option", { value: s }, t(`status.${s}`))));
  const model = h("select", { name: "model" }, h("option", { value: "" }, t("tasks.all")), models.map((m) => h("option", { value: m.modelName }, m.modelName)));
  const userId = h("input", { type: "text", name: "userId", maxlength: 128 });
  const errorCode = h("input", { type: "text", name: "errorCode", maxlength: 100, placeholder: "e.g. InternalError.Retryable" });
  const from = h("input", { type: "datetime-local", name: "from" });
  const to = h("input", { type: "datetime-local", name: "to" });
  const form = h("form", { class: "filters", role: "search" },
    field(t("tasks.status"), status), field(t("console.model"), model), field(t("console.userId"), userId),
    field(t("console.errorCode"), errorCode), field(t("console.from"), from), field(t("console.to"), to),
    h("button", { type: "submit" }, t("console.search")));
  const results = h("div", { class: "search-results" });
  const detail = h("div", { class: "task-detail" });
  put(panel, h("section", { class: "panel" }, form), results, detail);
  let nextToken = null;
  let tbody = null;
  let generation = 0; // the newest search: an older one's answer, arriving later, is dropped
  const run = async (reset) => {
    clearErrors(form);
    if (reset) {
      generation += 1;
      nextToken = null;
      fill(results, h("p", { class: "muted" }, t("app.loading")));
    }
    const mine = generation;
    let page;
    try {
      page = await api.get("/admin/tasks", {
        status: status.value, model: model.value, userId: userId.value.trim(), errorCode: errorCode.value.trim(),
        from: from.value ? new Date(from.value).toISOString() : "", to: to.value ? new Date(to.value).toISOString() : "",
        size: 20, nextToken,
      });
    } catch (error) {
      if (mine !== generation) return;
      const named = error.field && form.querySelector(`[name="${error.field}"]`);
      if (named) setFieldError(named.closest(".field"), error.fieldMessage);
      else fill(results, unavailable(error));
      if (named) clear(results);
      return;
    }
    if (mine !== generation) return;
    if (reset) {
      tbody = h("tbody");
      fill(results, h("section", { class: "panel" }, h("div", { class: "table-wrap" }, h("table", { id: "search-table" },
        taskHead(), tbody))));
    }
    for (const task of page.records) put(tbody, taskRow(task, () => showTask(detail, task.taskNo)));
    if (!tbody.children.length) put(tbody, h("tr", {}, h("td", { colspan: 7, class: "muted" }, t("console.noTasks"))));
    nextToken = page.nextToken;
    results.querySelector(".more")?.remove();
    if (nextToken) {
      const more = h("button", { type: "button", class: "secondary" }, t("tasks.more"));
      more.addEventListener("click", () => run(false));
      put(results, h("div", { class: "more" }, more));
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(true);
  });
  await run(true);
}

function taskHead() {
  return h("thead", {}, h("tr", {}, [t("points.when"), t("console.userId"), t("console.model"), t("tasks.status"), t("points.amount"),
    t("console.errorCode"), t("tasks.taskNo")].map((label) => h("th", { scope: "col" }, label))));
}

function taskRow(task, open) {
  const button = h("button", { type: "button", class: "link-button mono small" }, task.taskNo);
  button.addEventListener("click", open);
  return h("tr", { dataset: { taskNo: task.taskNo, status: task.status } },
    h("td", { class: "nowrap" }, formatTime(task.createTime)), h("td", {}, task.userId),
    h("td", {}, task.modelName), h("td", {}, statusBadge(task.status), task.refunded ? h("div", { class: "small muted" }, t("task.refunded")) : null),
    h("td", { class: "num" }, formatNumber(task.pointsCost)), h("td", { class: "small" }, task.errorCode || ""), h("td", {}, button));
}

async function showTask(detail, taskNo, changed = () => {}) {
  fill(detail, h("p", { class: "muted" }, t("app.loading")));
  let view;
  try {
    view = await api.get(`/admin/tasks/${encodeURIComponent(taskNo)}`);
  } catch (error) {
    fill(detail, errorBox(error));
    return;
  }
  const task = view.task;
  const panel = h("section", { class: "panel", "aria-labelledby": "detail-title" },
    h("h2", { id: "detail-title", tabindex: "-1" }, t("console.task", { taskNo })),
    h("dl", { class: "kv" },
      h("dt", {}, t("tasks.status")), h("dd", {}, statusBadge(task.status), task.refunded ? ` · ${t("task.refunded")}` : ""),
      h("dt", {}, t("console.userId")), h("dd", {}, task.userId),
      h("dt", {}, t("console.model")), h("dd", {}, task.modelName),
      h("dt", {}, t("console.execution")), h("dd", { class: "execution" }, view.executionStatus || t("console.noExecution")),
      task.retryableUntil ? [h("dt", {}, t("tasks.held")), h("dd", {}, t("tasks.heldUntil", { time: formatTime(task.retryableUntil) }))] : null,
      task.errorCode ? [h("dt", {}, t("console.errorCode")), h("dd", {}, task.errorCode, task.errorMessage ? ` – ${task.errorMessage}` : "")] : null,
      task.effect ? [h("dt", {}, t("task.effect")), h("dd", {}, task.effect)] : null,
      h("dt", {}, t("points.amount")), h("dd", {}, formatNumber(task.pointsCost))),
    h("h3", {}, t("console.ledger")),
    h("ul", {}, view.ledger.map((e) => h("li", {}, `${formatTime(e.createTime)} · ${t(`ledger.${e.type || "other"}`)} ${e.amount > 0 ? "+" : ""}${e.amount}`))));
  if (!task.refunded && task.status !== "completed") {
    put(panel, refundForm(task.taskNo, () => {
      showTask(detail, taskNo, changed);
      changed();
    }));
  }
  fill(detail, panel);
  panel.querySelector("h2").focus();
}

function refundForm(taskNo, done) {
  const reason = h("input", { type: "text", name: "reason", minlength: 3, maxlength: 200, required: true });
  const reasonField = field(t("console.refundReason"), reason, { hint: t("console.refundHint") });
  const message = h("div", { role: "status" });
  const form = h("form", { class: "refund-form", novalidate: true }, reasonField,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "danger" }, t("console.refund"))), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setFieldError(reasonField, "");
    clear(message);
    if (reason.value.trim().length < 3) {
      setFieldError(reasonField, t("console.reasonShort"));
      reason.focus();
      return;
    }
    try {
      await api.post(`/admin/tasks/${encodeURIComponent(taskNo)}/refund`, { reason: reason.value.trim() });
      put(message, h("div", { class: "ok-box" }, t("console.refunded", { taskNo })));
      setTimeout(done, 800);
    } catch (error) {
      if (error.field === "reason") setFieldError(reasonField, error.fieldMessage);
      else put(message, errorBox(error));
    }
  });
  return form;
}

// ------------------------------------------------------------------ held for a redrive
async function held(panel) {
  const list = h("div");
  const refresh = h("button", { type: "button", class: "secondary" }, t("tasks.refresh"));
  const detail = h("div", { class: "task-detail" });
  put(panel, h("section", { class: "panel" }, h("p", {}, t("console.heldIntro")), h("p", { class: "small muted" }, t("console.redriveHow"),
    " ", h("code", {}, "make redrive TASK=<taskNo>"), " · ", h("code", {}, "aws stepfunctions redrive-execution --execution-arn …")), refresh), list, detail);
  const load = async () => {
    fill(list, h("p", { class: "muted" }, t("app.loading")));
    let page;
    try {
      page = await api.get("/admin/tasks", { status: "failed", errorCode: HELD_CODE, size: 50 });
    } catch (error) {
      fill(list, unavailable(error));
      return;
    }
    const heldTasks = page.records.filter((task) => task.retryableUntil && !task.refunded);
    if (!heldTasks.length) {
      fill(list, h("p", { class: "ok-box" }, t("console.noHeld")));
      return;
    }
    const states = await Promise.all(heldTasks.map((task) => api.get(`/admin/tasks/${encodeURIComponent(task.taskNo)}`).catch(() => null)));
    const tbody = h("tbody", {}, heldTasks.map((task, i) => {
      const open = h("button", { type: "button", class: "secondary small" }, t("console.open"));
      open.addEventListener("click", () => showTask(detail, task.taskNo, load));
      const execution = states[i]?.executionStatus || "–";
      return h("tr", { dataset: { taskNo: task.taskNo } },
        h("td", { class: "mono small" }, task.taskNo), h("td", {}, task.userId), h("td", {}, task.modelName),
        h("td", { class: "nowrap" }, formatTime(task.retryableUntil)),
        h("td", {}, execution, h("div", { class: "small muted" }, t(`console.redrive.${["FAILED", "TIMED_OUT", "ABORTED"].includes(execution) ? "ready" : execution === "RUNNING" ? "running" : "unknown"}`))),
        h("td", {}, open));
    }));
    fill(list, h("section", { class: "panel" }, h("div", { class: "table-wrap" }, h("table", { id: "held-table" },
      h("thead", {}, h("tr", {}, [t("tasks.taskNo"), t("console.userId"), t("console.model"), t("console.heldUntil"), t("console.execution"), ""]
        .map((label) => h("th", { scope: "col" }, label)))), tbody))));
  };
  refresh.addEventListener("click", load);
  await load();
}

// ------------------------------------------------------------------ grants
async function grant(panel) {
  const userId = h("input", { type: "text", name: "userId", required: true, maxlength: 128 });
  const amount = h("input", { type: "number", name: "amount", min: 1, max: 1000000, step: 1, required: true, inputmode: "numeric" });
  const reason = h("input", { type: "text", name: "reason", required: true, maxlength: 200 });
  const category = h("select", { name: "category" }, ["promotional", "paid"].map((c) => h("option", { value: c }, t(`category.${c}`))));
  const validDays = h("input", { type: "number", name: "validDays", min: 1, max: 3650, step: 1, placeholder: t("points.never") });
  const fields = {
    userId: field(t("console.userId"), userId), amount: field(t("console.amount"), amount),
    reason: field(t("console.reason"), reason), category: field(t("points.category"), category, { hint: t("console.categoryHint") }),
    validDays: field(t("console.validDays"), validDays, { hint: t("console.validDaysHint") }),
  };
  const message = h("div", { role: "status", "aria-live": "polite" });
  const form = h("form", { novalidate: true, id: "grant-form" }, h("div", { class: "fields-2" }, Object.values(fields)),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("console.grant"))), message);
  put(panel, h("section", { class: "panel" }, h("h2", {}, t("console.tab.grant")), form));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    clear(message);
    let bad = false;
    if (!userId.value.trim()) { setFieldError(fields.userId, t("form.required")); bad = true; }
    const n = Number(amount.value);
    if (!Number.isInteger(n) || n < 1 || n > 1000000) { setFieldError(fields.amount, t("form.range", { min: 1, max: 1000000 })); bad = true; }
    if (!reason.value.trim()) { setFieldError(fields.reason, t("form.required")); bad = true; }
    if (bad) return form.querySelector('[aria-invalid="true"]')?.focus();
    const body = { userId: userId.value.trim(), amount: n, reason: reason.value.trim(), category: category.value };
    if (validDays.value) body.validDays = Number(validDays.value);
    try {
      const result = await api.post("/admin/points/grant", body, { headers: { "Idempotency-Key": newIdempotencyKey() } });
      put(message, h("div", { class: "ok-box" }, t("console.granted", { n: result.amount, user: result.userId, balance: result.balance })));
      amount.value = "";
    } catch (error) {
      const target = error.field && fields[error.field];
      if (target) setFieldError(target, error.fieldMessage);
      else put(message, errorBox(error));
    }
  });
}

// ------------------------------------------------------------------ a user
async function user(panel, params) {
  const userId = h("input", { type: "search", name: "userId", required: true, maxlength: 128 });
  const userField = field(t("console.userId"), userId);
  const form = h("form", { class: "filters", role: "search" }, userField, h("button", { type: "submit" }, t("console.lookUp")));
  const result = h("div");
  put(panel, h("section", { class: "panel" }, form), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setFieldError(userField, "");
    const id = userId.value.trim();
    if (!id) return setFieldError(userField, t("form.required"));
    fill(result, h("p", { class: "muted" }, t("app.loading")));
    let found;
    try {
      found = await api.get(`/admin/users/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error.status === 400) {
        setFieldError(userField, error.fieldMessage);
        clear(result);
      } else fill(result, unavailable(error));
      return;
    }
    const detail = h("div", { class: "task-detail" });
    fill(result, h("section", { class: "panel user-card", dataset: { user: found.userId } },
      h("h2", {}, found.userId),
      found.known ? null : h("p", { class: "info-box" }, t("console.unknownUser")),
      h("dl", { class: "kv" },
        h("dt", {}, t("points.balance")), h("dd", { class: "user-balance" }, formatNumber(found.balance)),
        h("dt", {}, t("console.taskCount")), h("dd", {}, formatNumber(found.taskCount)),
        h("dt", {}, t("console.ledgerCount")), h("dd", {}, formatNumber(found.ledgerCount))),
      found.lots?.length ? [h("h3", {}, t("points.lots")), h("ul", {}, found.lots.map((lot) =>
        h("li", {}, `${t(`lot.${lot.source}`)} · ${lot.remaining}/${lot.granted} · ${lot.expireTime ? formatTime(lot.expireTime) : t("points.never")}`)))] : null,
      found.orders?.length ? [h("h3", {}, t("points.orders")), h("ul", {}, found.orders.map((order) =>
        h("li", {}, `${order.orderNo} · ${order.packId} · ${t(`order.${order.status}`)}`)))] : null,
      h("h3", {}, t("console.recentTasks")),
      h("div", { class: "table-wrap" }, h("table", {}, taskHead(), h("tbody", {}, found.recentTasks.map((task) => taskRow(task, () => showTask(detail, task.taskNo)))))),
      h("h3", {}, t("console.recentLedger")),
      h("ul", {}, found.recentLedger.map((e) => h("li", {}, `${formatTime(e.createTime)} · ${t(`ledger.${e.type || "other"}`)} ${e.amount > 0 ? "+" : ""}${e.amount}${e.reason ? ` · ${e.reason}` : ""}`)))),
    detail);
  });
  if (params.get("user")) {
    userId.value = params.get("user");
    form.requestSubmit();
  }
}
