// Sessions. Two kinds: "user" (the users' pool: every /user route) and "admin" (the admins' pool, which
// the deployed /admin routes require). Locally one dev token serves both (the admins group is a claim).
// Tokens live in sessionStorage: this tab only, gone when it closes.
//
// Sign-in: locally POST /_local/sign-in (local/webapp.py); on AWS Cognito's hosted UI or any OIDC issuer
// with the authorization code flow and PKCE (RFC 7636): no client secret, the code is useless without
// the verifier that never left this tab. `#token=<jwt>` adopts a token (scripts, tests).

const STORE = { user: "aigc.session.user", admin: "aigc.session.admin" };
const PENDING = "aigc.oidc.pending";
const RETURN_TO = "aigc.returnTo";
let config = null;

export function configure(appConfig) {
  config = appConfig;
}

export function authMode() {
  return config?.auth?.type || "local";
}

export function hasAdminSignIn() {
  return Boolean(config?.adminAuth);
}

function b64urlDecode(text) {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

function b64urlEncode(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function claimsOf(token) {
  try {
    return JSON.parse(b64urlDecode(token.split(".")[1]));
  } catch {
    return null;
  }
}

function sessionFrom(token) {
  const claims = claimsOf(token);
  if (!claims || !claims.sub) return null;
  return {
    token,
    user: claims["cognito:username"] || claims.username || claims.email || claims.sub,
    sub: claims.sub,
    groups: claims["cognito:groups"] || [],
    exp: claims.exp || 0,
  };
}

function read(kind) {
  const raw = sessionStorage.getItem(STORE[kind]);
  if (!raw) return null;
  return sessionFrom(raw);
}

export function expired(session) {
  return !session || (session.exp && session.exp * 1000 < Date.now() + 2000); // 2 s early: no token dies in flight
}

// The live session of this kind, or null (none, or expired).
export function session(kind = "user") {
  const found = read(kind);
  return found && !expired(found) ? found : null;
}

// A session existed but ran out (so the page can say so on the sign-in form).
export function sessionLapsed(kind = "user") {
  const found = read(kind);
  return Boolean(found && expired(found));
}

export function store(token, kind = "user") {
  const found = sessionFrom(token);
  if (!found) throw new Error("not a JWT");
  sessionStorage.setItem(STORE[kind], token);
  return found;
}

export function forget(kind) {
  for (const which of kind ? [kind] : Object.keys(STORE)) sessionStorage.removeItem(STORE[which]);
}

export function isAdmin() {
  const admin = session("admin");
  if (admin) return true;
  const user = session("user");
  return Boolean(user && user.groups.includes("admins") && !hasAdminSignIn());
}

// The token a request to `path` carries: the operators' one on /admin routes when there is one.
export function tokenFor(path) {
  if (path.startsWith("/admin")) {
    const admin = session("admin");
    if (admin) return admin.token;
    if (hasAdminSignIn()) return null;
  }
  return session("user")?.token || null;
}

export function rememberReturn(route) {
  if (route && !route.startsWith("#/signin")) sessionStorage.setItem(RETURN_TO, route);
}

export function takeReturn() {
  const route = sessionStorage.getItem(RETURN_TO);
  sessionStorage.removeItem(RETURN_TO);
  return route || "#/create";
}

// ------------------------------------------------------------------ #token=<jwt>
export function adoptHashToken() {
  const match = location.hash.match(/^#token=([A-Za-z0-9._-]+)/);
  if (!match) return false;
  history.replaceState(null, "", location.pathname + location.search + "#/create");
  let found;
  try {
    found = store(match[1], "user");
  } catch {
    return false; // not a JWT: ignored, the sign-in page follows
  }
  if (found.groups.includes("admins")) store(match[1], "admin");
  else forget("admin");
  return true;
}

// ------------------------------------------------------------------ local dev sign-in
export async function signInLocal(user, admin) {
  const response = await fetch(config.auth.signInUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user, admin }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
  store(body.token, "user");
  if (admin) store(body.token, "admin");
}

// ------------------------------------------------------------------ OIDC: authorization code + PKCE
function redirectUri() {
  return location.origin + location.pathname;
}

export async function startOidc(kind = "user") {
  const settings = kind === "admin" ? config.adminAuth : config.auth;
  const verifier = b64urlEncode(crypto.getRandomValues(new Uint8Array(48)));
  const challenge = b64urlEncode(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = b64urlEncode(crypto.getRandomValues(new Uint8Array(24)));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, kind }));
  const url = new URL(settings.authorizeUrl);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: settings.clientId,
    redirect_uri: redirectUri(),
    scope: settings.scope || "openid email",
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

// Back from the issuer with ?code=...&state=...: trade the code for tokens. True when signed in here.
export async function finishOidc() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return false;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", location.pathname + (location.hash || ""));
  if (params.has("error")) throw new Error(params.get("error_description") || params.get("error"));
  if (!pending || pending.state !== params.get("state")) throw new Error("sign-in state mismatch: please sign in again");
  const settings = pending.kind === "admin" ? config.adminAuth : config.auth;
  const response = await fetch(settings.tokenUrl, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: settings.clientId,
      code: params.get("code"),
      redirect_uri: redirectUri(),
      code_verifier: pending.verifier,
    }),
  });
  const tokens = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(tokens.error_description || tokens.error || `HTTP ${response.status}`);
  // The access token: API Gateway's JWT authorizer checks its client_id against the pool's client.
  store(tokens.access_token || tokens.id_token, pending.kind);
  return true;
}

export function signOut() {
  const wasOidc = authMode() === "oidc" && session("user");
  forget();
  if (wasOidc && config.auth.logoutUrl) {
    const url = new URL(config.auth.logoutUrl);
    url.search = new URLSearchParams({ client_id: config.auth.clientId, logout_uri: redirectUri() }).toString();
    location.assign(url.toString());
    return;
  }
  location.hash = "#/signin";
}
