// A tiny DOM builder: every text goes in as text (never as HTML), so nothing the API or a user
// typed can run as markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name in el && typeof value !== "string" && name !== "list") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// el.append(...) that skips null, undefined and false (the DOM's own append writes them as text).
export function put(el, ...children) {
  return append(el, children);
}

// Replace el's children.
export function fill(el, ...children) {
  return append(clear(el), children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

let counter = 0;
export function uid(prefix = "id") {
  counter += 1;
  return `${prefix}-${counter}`;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// A label + control + hint + error block; `control` gets id, aria-describedby wired.
export function field(labelText, control, { hint, check = false, name } = {}) {
  const id = control.id || uid("f");
  control.id = id;
  const hintEl = hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null;
  const errorEl = h("span", { class: "error", id: `${id}-error`, role: "alert", hidden: true });
  const described = [hintEl && hintEl.id, errorEl.id].filter(Boolean).join(" ");
  control.setAttribute("aria-describedby", described);
  const label = h("label", { for: id }, labelText);
  const wrap = check
    ? h("div", { class: "field check", dataset: { field: name || "" } }, control, label, hintEl, errorEl)
    : h("div", { class: "field", dataset: { field: name || "" } }, label, control, hintEl, errorEl);
  return wrap;
}

export function setFieldError(wrap, message) {
  const control = wrap.querySelector("input, select, textarea");
  const error = wrap.querySelector(".error");
  if (message) {
    error.textContent = message;
    error.hidden = false;
    control?.setAttribute("aria-invalid", "true");
  } else {
    error.textContent = "";
    error.hidden = true;
    control?.removeAttribute("aria-invalid");
  }
}

export function clearErrors(root) {
  root.querySelectorAll(".field").forEach((wrap) => setFieldError(wrap, ""));
  root.querySelectorAll(".form-error").forEach((el) => { el.hidden = true; clear(el); });
}
