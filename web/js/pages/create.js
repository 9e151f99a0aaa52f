// Create: pick a model (or a template), give an image (URL, or upload a file: it becomes an outpainting
// task), set the parameters (a form generated from the model's schema; seed 003's rules beside the
// outpainting fields), see the price, submit, and follow the task until its result can be downloaded.
// The form is kept in sessionStorage as it is typed, so a sign-in in between loses nothing.

import { api, ApiError, newIdempotencyKey, optional, routeMissing } from "../api.js";
import { clear, clearErrors, debounce, field, fill, h, put, setFieldError } from "../dom.js";
import { formatNumber, formatTime, t } from "../i18n.js";
import { pushConnected, watchTask } from "../live.js";
import * as outpainting from "../outpainting.js";
import { catalogPrice, explain } from "../pricing.js";
import { buildField, collect, fieldNamed, validate } from "../schema-form.js";
import {
  currentBalance, downloadLink, errorContent, loadModels, pageHead, refreshBalance, statusBadge, taskMedia,
} from "../ui.js";

const DRAFT = "aigc.draft.create";
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp"];
let quoteRoute = null; // null: not known yet; false: this deployment has no quote route

function readDraft() {
  try {
    return JSON.parse(sessionStorage.getItem(DRAFT) || "{}");
  } catch {
    return {};
  }
}

export async function render(main, params) {
  put(main, pageHead(t("create.title"), t("create.subtitle")));
  const [models, templates] = await Promise.all([
    loadModels(),
    optional(api.get("/templates", null, { auth: false })).catch(() => null),
  ]);
  const draft = readDraft();
  const stops = [];

  // ---------------------------------------------------------------- the form's fixed parts
  const select = h("select", { name: "model", id: "model-select" });
  const groups = {};
  for (const model of models) {
    if (!groups[model.taskType]) {
      groups[model.taskType] = h("optgroup", { label: t(`type.${model.taskType}`) });
      put(select, groups[model.taskType]);
    }
    put(groups[model.taskType], h("option", { value: model.modelName }, `${model.modelName} · ${t("points.n", { n: model.pointsCost })}`));
  }
  if (templates?.length) {
    const group = h("optgroup", { label: t("create.templates") });
    for (const tpl of templates) put(group, h("option", { value: `tpl:${tpl.code}` }, `${tpl.name} · ${t("create.template")}`));
    put(select, group);
  }
  const wanted = params.get("model") || draft.model;
  if (wanted && [...select.options].some((o) => o.value === wanted)) select.value = wanted;

  const modelField = field(t("create.model"), select, { name: "model" });
  const modelInfo = h("p", { class: "model-info", id: "model-info" });
  const sourceBox = h("div", { class: "source" });
  const promptBox = h("div");
  const paramsBox = h("div", { class: "params" });
  const priceBox = h("div", { class: "price-box", role: "status", "aria-live": "polite" });
  const formError = h("div", { class: "error-box form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "submit" }, t("create.submit"));
  const form = h("form", { novalidate: true, "aria-labelledby": "create-form-title" },
    h("h2", { id: "create-form-title" }, t("create.formTitle")),
    modelField, modelInfo, sourceBox, promptBox, paramsBox, priceBox, formError, h("div", { class: "actions" }, submit));
  const formPanel = h("section", { class: "panel" }, form);
  const statusPanel = h("section", { class: "panel task-panel", "aria-live": "polite" },
    h("h2", {}, t("task.yours")), h("p", { class: "muted" }, t("create.placeholder")),
    h("ol", { class: "steps small muted" }, h("li", {}, t("create.step1")), h("li", {}, t("create.step2")), h("li", {}, t("create.step3"))));
  put(main, h("div", { class: "grid-2" }, formPanel, statusPanel));

  // ---------------------------------------------------------------- the parts that follow the model
  let current = null; // {kind: "model"|"template", spec, fields, prompt, url, file, source, updateEffect}

  function specFor(value) {
    if (value.startsWith("tpl:")) return { kind: "template", spec: templates.find((x) => `tpl:${x.code}` === value) };
    return { kind: "model", spec: models.find((m) => m.modelName === value) };
  }

  function imagesWanted(entry) {
    if (entry.kind === "template") return entry.spec.images || { min: 0, max: 0 };
    return { min: entry.spec.inputs?.minImages ?? 0, max: entry.spec.inputs?.maxImages ?? 0 };
  }

  function build() {
    const entry = specFor(select.value);
    const { spec } = entry;
    clear(modelInfo);
    clear(sourceBox);
    clear(promptBox);
    clear(paramsBox);
    clearErrors(form);
    put(modelInfo, spec.description || "", spec.priceRules?.length ? h("br") : null,
      spec.priceRules?.length ? `${t("create.priceRules")}: ${spec.priceRules.join("; ")}` : null);
    select.setAttribute("aria-describedby", "model-info");
    const sameModel = draft.model === select.value;

    // images
    const images = imagesWanted(entry);
    entry.url = null;
    entry.file = null;
    entry.source = "url";
    if (images.max > 0) {
      const multi = images.max > 1;
      const url = multi
        ? h("textarea", { name: "imageUrl", rows: 3, placeholder: "https://…" })
        : h("input", { type: "url", name: "imageUrl", placeholder: "https://…", inputmode: "url" });
      if (sameModel && draft.imageUrl) url.value = draft.imageUrl;
      entry.url = { wrap: field(multi ? t("create.imageUrls", { max: images.max }) : t("create.imageUrl"), url,
        { hint: t("create.imageUrlHint"), name: "imageUrl" }), control: url };
      const canUpload = entry.kind === "model" && entry.spec.taskType === "outpainting";
      if (canUpload) {
        const file = h("input", { type: "file", name: "file", accept: IMAGE_TYPES.join(",") });
        const preview = h("img", { class: "preview-img", alt: t("create.previewAlt"), hidden: true });
        file.addEventListener("change", () => {
          const chosen = file.files[0];
          preview.hidden = !chosen;
          if (chosen) preview.src = URL.createObjectURL(chosen);
          schedulePrice();
        });
        entry.file = { wrap: field(t("create.file"), file, { hint: t("create.fileHint"), name: "file" }), control: file };
        put(entry.file.wrap, preview);
        const initial = sameModel && draft.source === "upload" ? "upload" : "url";
        const radios = ["url", "upload"].map((value) => {
          const radio = h("input", { type: "radio", name: "source", value, checked: value === initial });
          radio.addEventListener("change", () => showSource(entry, value));
          return h("label", {}, radio, t(`create.source.${value}`));
        });
        put(sourceBox, h("fieldset", {}, h("legend", {}, t("create.image")),
          h("div", { class: "choice", role: "radiogroup", "aria-label": t("create.image") }, radios),
          entry.url.wrap, entry.file.wrap));
        showSource(entry, initial);
      } else {
        put(sourceBox, entry.url.wrap);
      }
    }

    // prompt
    entry.prompt = null;
    const promptMode = entry.kind === "model" ? entry.spec.inputs?.prompt : "none";
    if (promptMode && promptMode !== "none") {
      const prompt = h("textarea", { name: "prompt", rows: 3, maxlength: 2000, required: promptMode === "required" });
      if (sameModel && draft.prompt) prompt.value = draft.prompt;
      entry.prompt = { wrap: field(promptMode === "required" ? t("create.prompt") : t("create.promptOptional"), prompt,
        { hint: t("create.promptHint"), name: "prompt" }), control: prompt };
      put(promptBox, entry.prompt.wrap);
    }

    // parameters (models) or inputs (templates), from their JSON schema
    const schema = entry.kind === "model" ? entry.spec.parameters : entry.spec.inputs;
    const required = new Set(schema?.required || []);
    const properties = entry.kind === "model" ? withVideoChoices(schema?.properties || {}, entry.spec.video) : schema?.properties || {};
    entry.fields = Object.entries(properties).map(([name, prop]) => buildField(name, prop, { required: required.has(name) }));
    const saved = sameModel ? draft.params || {} : {};
    for (const f of entry.fields) if (f.name in saved) f.write(saved[f.name]);
    if (entry.kind === "template" && !sameModel) {
      for (const f of entry.fields) if (entry.spec.example && f.name in entry.spec.example && f.info.type !== "string") f.write(entry.spec.example[f.name]);
    }
    entry.updateEffect = null;
    if (entry.kind === "model" && outpainting.isOutpainting(entry.spec)) {
      const byName = Object.fromEntries(entry.fields.map((f) => [f.name, f]));
      put(paramsBox, h("h3", {}, t("op.title")), h("p", { class: "group-note" }, t("op.intro")));
      entry.updateEffect = outpainting.layout(paramsBox, byName);
      // fields the layout did not place
      const placed = new Set(outpainting.GROUPS.flatMap((g) => g.names));
      const rest = entry.fields.filter((f) => !placed.has(f.name));
      if (rest.length) put(paramsBox, h("fieldset", {}, h("legend", {}, t("create.settings")), h("div", { class: "fields-2" }, rest.map((f) => f.wrap))));
    } else if (entry.fields.length) {
      put(paramsBox, h("fieldset", {}, h("legend", {}, entry.kind === "template" ? t("create.inputs") : t("create.settings")),
        h("div", { class: "fields-2 fields-wide" }, entry.fields.map((f) => f.wrap))));
    }
    current = entry;
    onChange();
  }

  // A video model takes only some of the durations, sizes or resolutions its schema allows: offer those.
  function withVideoChoices(properties, video) {
    if (!video) return properties;
    const out = { ...properties };
    const choose = (name, values, fallback) => {
      if (!out[name] || !values?.length) return;
      const type = typeof values[0] === "number" ? "integer" : "string";
      out[name] = { anyOf: [{ type, enum: values }, { type: "null" }], default: fallback ?? null, title: out[name].title };
    };
    choose("duration", video.durations, video.durations?.length === 1 ? video.durations[0] : null);
    choose("size", video.sizes, video.defaultSize);
    choose("resolution", video.resolutions, video.defaultResolution);
    return out;
  }

  function showSource(entry, value) {
    const upload = value === "upload" && Boolean(entry.file);
    entry.source = upload ? "upload" : "url";
    if (entry.url) entry.url.wrap.hidden = upload;
    if (entry.file) entry.file.wrap.hidden = !upload;
    if (entry === current) onChange();
  }

  // ---------------------------------------------------------------- the request as it stands
  function imageValue() {
    if (!current.url) return undefined;
    const raw = current.url.control.value.trim();
    if (!raw) return undefined;
    if (current.url.control.tagName === "TEXTAREA") {
      const list = raw.split(/\s+/).filter(Boolean);
      return list.length === 1 ? list[0] : list;
    }
    return raw;
  }

  function body({ forQuote = false } = {}) {
    const out = {};
    const values = collect(current.fields);
    if (current.kind === "template") {
      out.templateCode = current.spec.code;
      out.inputs = values;
    } else {
      out.modelName = current.spec.modelName;
      if (Object.keys(values).length) out.parameters = values;
    }
    const image = current.source === "upload" ? undefined : imageValue();
    if (image !== undefined) out.imageUrl = image;
    else if (forQuote && imagesWanted(current).min > 0) out.imageUrl = "https://example.com/image.png";
    const prompt = current.prompt?.control.value.trim();
    if (prompt) out.prompt = prompt;
    return out;
  }

  function saveDraft() {
    if (!current) return;
    const values = {};
    for (const f of current.fields) values[f.name] = f.read();
    sessionStorage.setItem(DRAFT, JSON.stringify({
      model: select.value, source: current.source, imageUrl: current.url?.control.value || "",
      prompt: current.prompt?.control.value || "", params: values,
    }));
  }

  // ---------------------------------------------------------------- the price
  let priceTicket = 0;
  async function showPrice() {
    const ticket = ++priceTicket;
    let pricing = null;
    let exact = false;
    let hint = "";
    if (quoteRoute !== false) {
      try {
        const quote = await api.post("/user/ai/tasks/quote", body({ forQuote: true }));
        pricing = quote.pricing;
        exact = true;
        quoteRoute = true;
      } catch (error) {
        if (routeMissing(error)) quoteRoute = false;
        else if (error.status === 400) hint = error.message;
        else if (error.status === 401) return;
      }
    }
    if (ticket !== priceTicket) return;
    if (!pricing) {
      const spec = current.kind === "template" ? { ...current.spec, pointsCost: current.spec.examplePrice } : current.spec;
      const parameters = current.kind === "template" ? { ...current.spec.presetParameters, ...mapInputs() } : collect(current.fields, { all: true });
      pricing = catalogPrice(spec, parameters);
    }
    clear(priceBox);
    priceBox.dataset.price = String(pricing.total);
    put(priceBox, 
      h("span", {}, t("create.price")),
      h("span", { class: "price" }, t("points.n", { n: formatNumber(pricing.total) })),
      h("span", { class: "why" }, [explain(pricing), exact ? "" : t("create.estimate")].filter(Boolean).join(" · ")),
    );
    const balance = currentBalance();
    if (balance !== null && balance < pricing.total) {
      put(priceBox, h("span", { class: "why low-balance" }, t("create.lowBalance", { n: balance }), " ",
        h("a", { href: "#/points" }, t("error.buyPoints"))));
    }
    if (hint) put(priceBox, h("span", { class: "why" }, hint));
    submit.textContent = t("create.submitFor", { n: formatNumber(pricing.total) });
  }

  function mapInputs() {
    const inputs = collect(current.fields, { all: true });
    const out = {};
    for (const [input, parameter] of Object.entries(current.spec.inputParameters || {})) {
      if (input in inputs) out[parameter] = inputs[input];
    }
    return out;
  }

  const schedulePrice = debounce(showPrice, 250);

  function onChange() {
    if (!current) return;
    if (current.updateEffect) current.updateEffect(collect(current.fields, { all: true }));
    saveDraft();
    schedulePrice();
  }

  select.addEventListener("change", () => {
    draft.model = null;
    build();
  });
  form.addEventListener("input", (event) => {
    if (event.target !== select) onChange();
  });
  form.addEventListener("change", (event) => {
    if (event.target !== select) onChange();
  });
  const onBalance = () => schedulePrice();
  document.addEventListener("aigc:balance", onBalance);
  stops.push(() => document.removeEventListener("aigc:balance", onBalance));

  // ---------------------------------------------------------------- submit
  function placeError(error) {
    const target = error.field === "imageUrl" ? current.url?.wrap
      : error.field === "prompt" ? current.prompt?.wrap
        : error.field === "contentType" || error.field === "fileName" ? current.file?.wrap
          : error.field && /^(parameters|inputs)\./.test(error.field) ? fieldNamed(current.fields, error.field)?.wrap : null;
    if (target && !target.hidden) {
      setFieldError(target, error.fieldMessage);
      target.querySelector("input, select, textarea")?.focus();
      return;
    }
    fill(formError, ...errorContent(error));
    formError.hidden = false;
    formError.focus?.();
  }

  function checkForm() {
    clearErrors(form);
    const bad = validate(current.fields);
    const images = imagesWanted(current);
    if (current.source === "upload") {
      const chosen = current.file.control.files[0];
      if (!chosen) setFieldError(current.file.wrap, t("create.fileRequired"));
      else if (!IMAGE_TYPES.includes(chosen.type)) setFieldError(current.file.wrap, t("create.fileType"));
    } else if (images.min > 0 && !imageValue()) {
      setFieldError(current.url.wrap, t("form.required"));
    } else if (imageValue() !== undefined) {
      const urls = [imageValue()].flat();
      if (urls.some((u) => !/^https?:\/\/\S+$/i.test(u))) setFieldError(current.url.wrap, t("create.urlInvalid"));
    }
    if (current.prompt?.control.required && !current.prompt.control.value.trim()) setFieldError(current.prompt.wrap, t("form.required"));
    const invalid = form.querySelector('[aria-invalid="true"]');
    if (invalid) invalid.focus();
    return !bad && !invalid;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!current || !checkForm()) return;
    submit.disabled = true;
    try {
      const task = current.source === "upload" ? await uploadAndFind() : await api.post("/user/ai/tasks/submit", body(),
        { headers: { "Idempotency-Key": newIdempotencyKey() } });
      follow(task);
      refreshBalance();
    } catch (error) {
      if (error.status !== 401) placeError(error instanceof ApiError ? error : new ApiError(0, error.message));
    } finally {
      submit.disabled = false;
    }
  });

  // An uploaded file becomes a task when it lands (the upload trigger): upload it, then find that task.
  async function uploadAndFind() {
    const file = current.file.control.files[0];
    const ticket = await api.post("/user/uploads", { fileName: file.name, contentType: file.type, parameters: collect(current.fields) });
    if (file.size > ticket.maxBytes) throw new ApiError(400, `contentType: ${t("create.fileTooBig", { mb: Math.floor(ticket.maxBytes / 1048576) })}`);
    const data = new FormData();
    for (const [name, value] of Object.entries(ticket.fields)) data.append(name, value);
    data.append("file", file);
    showPending(t("create.uploading"));
    let response;
    try {
      response = await fetch(ticket.url, { method: "POST", body: data });
    } catch (error) {
      throw new ApiError(0, t("create.uploadFailed", { why: error.message }));
    }
    if (!response.ok) throw new ApiError(response.status, t("create.uploadFailed", { why: `HTTP ${response.status}` }));
    showPending(t("create.uploaded"));
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) {
      const page = await api.get("/user/ai/tasks/list", { size: 10, taskType: "outpainting" });
      const found = page.records.find((task) => [task.imageUrl].flat().some((u) => u && u.includes(`/${ticket.key}`)));
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    throw new ApiError(0, t("create.uploadLost"));
  }

  // ---------------------------------------------------------------- the task as it goes
  function showPending(text) {
    statusPanel.hidden = false;
    fill(statusPanel, h("h2", {}, t("task.yours")), h("p", { class: "muted" }, text));
  }

  let watching = null;
  function follow(task) {
    if (watching) watching();
    paint(task);
    watching = watchTask(task.taskNo, paint);
  }
  stops.push(() => watching && watching());

  function paint(task) {
    statusPanel.hidden = false;
    statusPanel.dataset.taskNo = task.taskNo;
    statusPanel.dataset.status = task.status;
    const final = ["completed", "failed", "cancelled"].includes(task.status);
    const lines = [
      h("h2", {}, t("task.yours")),
      h("p", { class: "actions" }, statusBadge(task.status), h("span", { class: "mono small" }, task.taskNo)),
    ];
    if (!final) {
      lines.push(h("progress", { max: 100, value: task.progress || 0, "aria-label": t("task.progress") }));
      if (task.queuePosition) lines.push(h("p", { class: "small" }, t("task.queued", { n: task.queuePosition, time: formatTime(task.estimatedStartTime) })));
      lines.push(h("p", { class: "small muted live-mode" }, pushConnected() ? t("task.livePush") : t("task.livePoll")));
    }
    if (task.effect) lines.push(h("p", { class: "small" }, h("strong", {}, `${t("task.effect")}: `), task.effect));
    lines.push(h("p", { class: "small muted" }, t("task.cost", { n: task.pointsCost }), task.refunded ? ` · ${t("task.refunded")}` : ""));
    if (task.status === "completed") {
      const urls = task.resultUrls?.length ? task.resultUrls : [task.resultUrl].filter(Boolean);
      urls.forEach((url, index) => {
        lines.push(taskMedia({ ...task, resultUrl: url }));
        lines.push(h("p", { class: "actions" }, downloadLink(task, url, index)));
      });
    }
    if (task.status === "failed" || task.status === "cancelled") {
      if (task.errorMessage) lines.push(h("div", { class: "error-box" }, task.errorMessage, task.errorCode ? h("span", { class: "mono small" }, ` (${task.errorCode})`) : null));
    }
    lines.push(h("p", { class: "actions" }, h("a", { href: "#/tasks" }, t("task.seeAll"))));
    fill(statusPanel, ...lines);
    if (final) refreshBalance();
  }

  build();
  return () => stops.forEach((stop) => stop());
}
