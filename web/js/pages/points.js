// Points: the balance and its lots (what expires when), buying a pack (where this deployment sells
// them: GET /points/packs, POST /user/points/checkout), the orders, and the statement (the ledger).

import { api, newIdempotencyKey, optional } from "../api.js";
import { clear, fill, h, put } from "../dom.js";
import { formatMoney, formatNumber, formatTime, t } from "../i18n.js";
import { onLive } from "../live.js";
import { errorBox, pageHead, showBalance } from "../ui.js";

export async function render(main, params) {
  put(main, pageHead(t("points.title"), t("points.subtitle")));
  const balancePanel = h("section", { class: "panel", "aria-labelledby": "balance-title" },
    h("h2", { id: "balance-title" }, t("points.balance")), h("p", { class: "muted" }, t("app.loading")));
  const buyPanel = h("section", { class: "panel", id: "buy", "aria-labelledby": "buy-title", hidden: true });
  const ordersPanel = h("section", { class: "panel", "aria-labelledby": "orders-title", hidden: true });
  const statementPanel = h("section", { class: "panel", "aria-labelledby": "statement-title" });
  put(main, h("div", { class: "grid-2" }, h("div", {}, balancePanel, statementPanel), h("div", {}, buyPanel, ordersPanel)));

  const paid = params.get("paid");
  if (paid) {
    main.querySelector(".page-head").after(h("div", { class: "ok-box", role: "status" }, t("points.paid")));
  }
  if (params.get("cancelled")) {
    main.querySelector(".page-head").after(h("div", { class: "info-box", role: "status" }, t("points.cancelled")));
  }

  // ---------------------------------------------------------------- balance and lots
  function paintBalance(balance) {
    fill(balancePanel, 
      h("h2", { id: "balance-title" }, t("points.balance")),
      h("p", { class: "balance-big", "data-balance": balance.balance }, formatNumber(balance.balance)),
      balance.expireTime ? h("p", { class: "small muted" }, t("points.nextExpiry", { time: formatTime(balance.expireTime) })) : null,
    );
    const lots = balance.lots || [];
    if (lots.length) {
      put(balancePanel, h("h3", {}, t("points.lots")), h("div", { class: "table-wrap" }, h("table", {},
        h("caption", { class: "visually-hidden" }, t("points.lots")),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("points.source")), h("th", { scope: "col" }, t("points.category")),
          h("th", { scope: "col", class: "num" }, t("points.remaining")), h("th", { scope: "col" }, t("points.expires")))),
        h("tbody", {}, lots.map((lot) => h("tr", {},
          h("td", {}, t(`lot.${lot.source}`)), h("td", {}, t(`category.${lot.category}`)),
          h("td", { class: "num" }, `${formatNumber(lot.remaining)} / ${formatNumber(lot.granted)}`),
          h("td", {}, lot.expireTime ? formatTime(lot.expireTime) : t("points.never"))))))),
      h("p", { class: "small muted" }, t("points.lotsNote")));
    }
  }

  async function loadBalance() {
    try {
      const balance = await api.get("/user/points/consumption/balance");
      paintBalance(balance);
      showBalance(balance);
    } catch (error) {
      if (error.status !== 401) fill(balancePanel, errorBox(error));
    }
  }

  // ---------------------------------------------------------------- statement
  const rows = h("tbody");
  const more = h("div", { class: "more" });
  let nextToken = null;
  put(statementPanel, h("h2", { id: "statement-title" }, t("points.statement")), h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("points.when")), h("th", { scope: "col" }, t("points.what")),
      h("th", { scope: "col", class: "num" }, t("points.amount")), h("th", { scope: "col", class: "hide-phone" }, t("points.ref")))),
    rows)), more);

  async function loadStatement(reset) {
    if (reset) {
      nextToken = null;
      clear(rows);
    }
    try {
      const page = await api.get("/user/points/consumption/records", { size: 15, nextToken });
      for (const entry of page.records) {
        put(rows, h("tr", { dataset: { type: entry.type } },
          h("td", { class: "nowrap" }, formatTime(entry.createTime)),
          h("td", {}, t(`ledger.${entry.type || "other"}`), entry.reason ? h("div", { class: "small muted" }, entry.reason) : null),
          h("td", { class: `num ${entry.amount < 0 ? "amount-neg" : "amount-pos"}` }, `${entry.amount > 0 ? "+" : ""}${formatNumber(entry.amount)}`),
          h("td", { class: "mono small hide-phone" }, entry.taskNo || entry.orderNo || entry.ref || "")));
      }
      if (!rows.children.length) put(rows, h("tr", {}, h("td", { colspan: 4, class: "muted" }, t("points.noEntries"))));
      nextToken = page.nextToken;
      clear(more);
      if (nextToken) {
        const button = h("button", { type: "button", class: "secondary" }, t("tasks.more"));
        button.addEventListener("click", () => loadStatement(false));
        put(more, button);
      }
    } catch (error) {
      if (error.status !== 401) fill(more, errorBox(error));
    }
  }

  // ---------------------------------------------------------------- buying (where packs exist)
  async function loadPacks() {
    let packs;
    try {
      packs = await optional(api.get("/points/packs", null, { auth: false }));
    } catch {
      packs = null;
    }
    if (!packs || !packs.length) return; // this deployment sells no points: no Buy section
    const message = h("div", { role: "status" });
    const grid = h("div", { class: "packs" }, packs.map((pack) => {
      const buy = h("button", { type: "button", class: "buy", dataset: { pack: pack.packId } },
        t("points.buyFor", { price: formatMoney(pack.price.amount, pack.price.currency) }));
      buy.addEventListener("click", () => checkout(pack, buy, message));
      return h("div", { class: "pack" },
        h("div", { class: "pack-name" }, h("strong", {}, pack.name)),
        h("div", { class: "pack-points" }, t("points.n", { n: formatNumber(pack.points) })),
        pack.bonusPoints ? h("div", { class: "small" }, t("points.bonus", { n: pack.bonusPoints, days: pack.bonusValidDays ?? "∞" })) : null,
        h("div", { class: "small muted" }, pack.validDays ? t("points.validDays", { n: pack.validDays }) : t("points.noExpiry")),
        h("div", { class: "pack-price" }, formatMoney(pack.price.amount, pack.price.currency)),
        buy);
    }));
    fill(buyPanel, h("h2", { id: "buy-title" }, t("points.buy")), h("p", { class: "small muted" }, t("points.buyNote")), grid, message);
    buyPanel.hidden = false;
  }

  async function checkout(pack, button, message) {
    button.disabled = true;
    clear(message);
    const back = `${location.origin}${location.pathname}`;
    try {
      const order = await api.post("/user/points/checkout", {
        packId: pack.packId,
        successUrl: `${back}#/points?paid={CHECKOUT_SESSION_ID}`,
        cancelUrl: `${back}#/points?cancelled=1`,
      }, { headers: { "Idempotency-Key": newIdempotencyKey() } });
      if (!order.checkoutUrl) throw new Error(t("points.noCheckout"));
      location.assign(order.checkoutUrl);
    } catch (error) {
      button.disabled = false;
      if (error.status !== 401) put(message, errorBox(error));
    }
  }

  async function loadOrders() {
    let page;
    try {
      page = await optional(api.get("/user/points/orders", { size: 5 }));
    } catch {
      return;
    }
    if (!page || !page.records.length) return;
    fill(ordersPanel, h("h2", { id: "orders-title" }, t("points.orders")), h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("points.when")), h("th", { scope: "col" }, t("points.pack")),
        h("th", { scope: "col", class: "num" }, t("points.amount")), h("th", { scope: "col" }, t("tasks.status")))),
      h("tbody", {}, page.records.map((order) => h("tr", { dataset: { order: order.orderNo, status: order.status } },
        h("td", { class: "nowrap" }, formatTime(order.createTime)), h("td", {}, order.packId),
        h("td", { class: "num" }, formatMoney(order.amount, order.currency)),
        h("td", {}, t(`order.${order.status}`), order.status === "pending" && order.checkoutUrl
          ? [" ", h("a", { href: order.checkoutUrl }, t("points.payNow"))] : null)))))));
    ordersPanel.hidden = false;
  }

  await Promise.all([loadBalance(), loadStatement(true), loadPacks(), loadOrders()]);
  let refreshTimer = null;
  const stop = onLive("points", (balance) => {
    paintBalance(balance);
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => { loadStatement(true); loadOrders(); }, 400);
  });
  // Back from paying: the points arrive with the payment provider's event; look again for a while.
  let polls = paid ? 10 : 0;
  const poll = setInterval(() => {
    if (polls-- <= 0) return clearInterval(poll);
    loadBalance();
    loadOrders();
  }, 2000);
  return () => {
    stop();
    clearInterval(poll);
    clearTimeout(refreshTimer);
  };
}
