// Live updates: the WebSocket push channel (docs/api-guide.md, "Push") where the deployment has one,
// polling otherwise. A watched task is also read now and then while the socket is open: a message sent
// while the socket was down is not kept, and each message carries the whole state, so a GET catches up.

import { api } from "./api.js";

export const FINAL = ["completed", "failed", "cancelled"];
const events = new EventTarget();
let socket = null;
let socketUrl = null;
let tokenSource = null;
let retryMs = 1000;
let pingTimer = null;
let stopped = true;

export function onLive(type, handler) {
  const listener = (event) => handler(event.detail);
  events.addEventListener(type, listener);
  return () => events.removeEventListener(type, listener);
}

export function pushConnected() {
  return Boolean(socket && socket.readyState === WebSocket.OPEN);
}

// (Re)connect with the current token: after every sign-in, so the socket is the signed-in user's.
export function startPush(wsUrl, getToken) {
  stopPush();
  socketUrl = wsUrl;
  tokenSource = getToken;
  stopped = false;
  open();
}

export function stopPush() {
  stopped = true;
  clearInterval(pingTimer);
  const old = socket;
  socket = null;
  if (old) old.close();
}

function open() {
  if (stopped || !socketUrl || !("WebSocket" in window)) return;
  const token = tokenSource();
  if (!token) return;
  const url = new URL(socketUrl);
  url.searchParams.set("token", token);
  let ws;
  try {
    ws = new WebSocket(url.toString());
  } catch {
    return;
  }
  socket = ws;
  ws.addEventListener("open", () => {
    retryMs = 1000;
    events.dispatchEvent(new CustomEvent("connection", { detail: true }));
    clearInterval(pingTimer);
    pingTimer = setInterval(() => pushConnected() && socket.send(JSON.stringify({ action: "ping" })), 5 * 60 * 1000);
  });
  ws.addEventListener("message", (event) => {
    if (socket !== ws) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "task.updated") events.dispatchEvent(new CustomEvent("task", { detail: message.data }));
    if (message.type === "points.changed") events.dispatchEvent(new CustomEvent("points", { detail: message.data }));
  });
  ws.addEventListener("close", () => {
    if (socket !== ws) return; // replaced or stopped on purpose
    clearInterval(pingTimer);
    events.dispatchEvent(new CustomEvent("connection", { detail: false }));
    socket = null;
    if (!stopped) setTimeout(open, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  });
}

// Follow one task until it ends: `onUpdate(task)` for every new state. Returns a function that stops.
export function watchTask(taskNo, onUpdate, { pollMs = 1500, pushPollMs = 5000 } = {}) {
  let done = false;
  let timer = null;
  let last = null;
  const seen = (task) => {
    if (done || !task || task.taskNo !== taskNo) return;
    const key = `${task.status}|${task.progress}|${task.queuePosition}|${task.resultUrl ? 1 : 0}`;
    if (key !== last) {
      last = key;
      onUpdate(task);
    }
    if (FINAL.includes(task.status)) stop();
  };
  const unsubscribe = onLive("task", seen);
  const poll = async () => {
    if (done) return;
    try {
      seen(await api.get(`/user/ai/tasks/${encodeURIComponent(taskNo)}`));
    } catch (error) {
      if (error.status === 401) return stop();
    }
    if (!done) timer = setTimeout(poll, pushConnected() ? pushPollMs : pollMs);
  };
  function stop() {
    done = true;
    clearTimeout(timer);
    unsubscribe();
  }
  timer = setTimeout(poll, pushConnected() ? 300 : pollMs);
  return stop;
}
