// The app: config, language, sign-in, the router (#/create, #/tasks, #/points, #/console, #/signin) and
// the header. Each page is a module with render(main, params) -> optional cleanup.

import * as auth from "./auth.js";
import { configureApi } from "./api.js";
import { fill, h, put } from "./dom.js";
import { preferredLanguage, setLanguage, t, translate } from "./i18n.js";
import { startPush, stopPush } from "./live.js";
import { banner, followBalance, refreshBalance } from "./ui.js";

const PAGES = {
  signin: () => import("./pages/signin.js"),
  create: () => import("./pages/create.js"),
  tasks: () => import("./pages/tasks.js"),
  points: () => import("./pages/points.js"),
  console: () => import("./pages/console.js"),
};
const PUBLIC = ["signin"];
let cleanup = null;
let config = null;
let rendering = 0;

function parseRoute() {
  const hash = location.hash || "#/create";
  const [path, query] = hash.replace(/^#\/?/, "").split("?");
  const name = PAGES[path] ? path : "create";
  return { name, params: new URLSearchParams(query || "") };
}

// A 401 (or no token): keep where the user was (and the Create page keeps its form in sessionStorage),
// then sign in again and come back.
function unauthorized(path) {
  if (path && path.startsWith("/admin") && auth.hasAdminSignIn()) {
    auth.forget("admin");
    banner(t("auth.adminExpired"), "info");
    return;
  }
  if (parseRoute().name === "signin") return;
  auth.rememberReturn(location.hash);
  auth.forget("user");
  stopPush();
  banner(t("auth.expired"), "info");
  location.hash = "#/signin";
}

function updateHeader() {
  const user = auth.session("user");
  const nav = document.querySelector(".mainnav");
  nav.hidden = !user;
  nav.querySelector('[data-route="console"]').hidden = !(auth.isAdmin() || (user && auth.hasAdminSignIn()));
  const name = document.querySelector(".user-name");
  name.textContent = user ? user.user : "";
  name.hidden = !user;
  document.querySelector(".sign-out").hidden = !user;
  if (!user) document.querySelector(".balance-pill").hidden = true;
  const route = parseRoute().name;
  nav.querySelectorAll("a").forEach((a) => {
    if (a.dataset.route === route) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
}

async function render() {
  const ticket = ++rendering;
  if (auth.adoptHashToken()) signedIn({ navigate: false }); // #token=<jwt> on a page already open
  const { name, params } = parseRoute();
  if (!PUBLIC.includes(name) && !auth.session("user")) {
    auth.rememberReturn(location.hash);
    if (auth.sessionLapsed("user")) banner(t("auth.expired"), "info");
    location.hash = "#/signin";
    return;
  }
  if (typeof cleanup === "function") cleanup();
  cleanup = null;
  updateHeader();
  const main = document.getElementById("main");
  let page;
  try {
    page = await PAGES[name]();
  } catch (error) {
    fill(main, h("div", { class: "error-box", role: "alert" }, t("error.load"), " ", String(error.message)));
    return;
  }
  if (ticket !== rendering) return;
  // Each render has a view of its own: a render still loading when the next one starts fills only its
  // own, detached, view (then is cleaned up), never the page the user is on.
  const view = h("div", { class: "view" });
  fill(main, view);
  document.title = `${t(`nav.${name}`)} · AIGC Studio`;
  let done = null;
  try {
    done = await page.render(view, params, { config, signedIn });
  } catch (error) {
    if (error.status === 401) return;
    put(view, h("div", { class: "error-box", role: "alert" }, error.message || String(error)));
  }
  if (ticket !== rendering) {
    if (typeof done === "function") done();
    return;
  }
  cleanup = done;
  translate(view);
  if (document.activeElement === document.body || !main.contains(document.activeElement)) {
    view.querySelector("h1")?.setAttribute("tabindex", "-1");
    view.querySelector("h1")?.focus({ preventScroll: true });
  }
}

// After any sign-in: the socket, the balance, and back to where the user was.
function signedIn({ navigate = true } = {}) {
  updateHeader();
  startPush(config.wsUrl, () => auth.session("user")?.token);
  followBalance();
  refreshBalance();
  if (navigate) location.hash = auth.takeReturn();
}

async function boot() {
  await setLanguage(preferredLanguage());
  const select = document.getElementById("lang-select");
  select.value = document.documentElement.lang;
  select.addEventListener("change", async () => {
    await setLanguage(select.value, { save: true });
    render();
  });
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
    config = await response.json();
  } catch (error) {
    fill(document.getElementById("main"), 
      h("div", { class: "error-box", role: "alert" }, t("error.config"), " ", error.message));
    return;
  }
  auth.configure(config);
  configureApi(config.apiBase, unauthorized);
  document.querySelector(".sign-out").addEventListener("click", () => {
    stopPush();
    auth.signOut();
    updateHeader();
  });
  let returned = false;
  try {
    returned = await auth.finishOidc(); // back from the issuer's sign-in page
  } catch (error) {
    banner(`${t("auth.failed")} ${error.message}`, "error");
  }
  if (auth.session("user") || location.hash.startsWith("#token=")) {
    auth.adoptHashToken();
    signedIn({ navigate: returned });
  }
  window.addEventListener("hashchange", render);
  await render();
  document.body.dataset.ready = "true";
}

boot();
