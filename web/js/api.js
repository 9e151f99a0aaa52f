// The API client: the envelope {code, message, data}, Accept-Language, the bearer token, and errors as
// ApiError (status, errorCode, the message in the reader's language, the field a 400 names).

import { tokenFor } from "./auth.js";
import { language } from "./i18n.js";

let base = "";
let onUnauthorized = () => {};

export function configureApi(apiBase, unauthorized) {
  base = (apiBase || "").replace(/\/$/, "");
  onUnauthorized = unauthorized;
}

export class ApiError extends Error {
  constructor(status, message, { errorCode = null, retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.errorCode = errorCode;
    this.retryAfter = retryAfter;
    // "parameters.x_scale: Input should be ..." / "imageUrl：..." (a Chinese colon): the field it names.
    const match = status === 400 ? /^([A-Za-z_][\w.[\]]*)\s*[:：]\s*(.*)$/s.exec(message) : null;
    this.field = match ? match[1] : null;
    this.fieldMessage = match ? match[2] : message;
  }
}

// The route answered 404 without the envelope: API Gateway has no such route (a feature not deployed).
export function routeMissing(error) {
  return error instanceof ApiError && (error.status === 404 || error.status === 405) && error.gateway;
}

export async function request(method, path, { body, query, headers = {}, auth = true } = {}) {
  const url = new URL(base + path, location.href);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const sent = { "Accept-Language": language(), ...headers };
  if (auth) {
    const token = tokenFor(path);
    if (!token) {
      onUnauthorized(path);
      throw new ApiError(401, "not signed in");
    }
    sent.Authorization = `Bearer ${token}`;
  }
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, `network error: ${error.message}`);
  }
  const payload = await response.json().catch(() => null);
  if (response.ok && payload && (payload.code === undefined || payload.code === 200)) return payload.data ?? payload;
  const message = payload?.message || `HTTP ${response.status}`;
  const error = new ApiError(response.status, message, {
    errorCode: payload?.errorCode || null,
    retryAfter: response.headers.get("Retry-After"),
  });
  error.gateway = !payload || payload.code === undefined; // API Gateway's own answer, not the app's envelope
  if (response.status === 401 && auth) onUnauthorized(path);
  throw error;
}

export const api = {
  get: (path, query, options) => request("GET", path, { ...options, query }),
  post: (path, body, options) => request("POST", path, { ...options, body }),
  del: (path, options) => request("DELETE", path, options),
};

// Probe an optional route: its data, or null when this deployment does not have it (404/405 from the gateway).
export async function optional(promise) {
  try {
    return await promise;
  } catch (error) {
    if (routeMissing(error)) return null;
    throw error;
  }
}

export function newIdempotencyKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}
