// Sextant's script: selection, keyboard, charts drawn from the server's
// already downsampled series, and actions that call the JSON APIs (the
// same routes and permissions as any client). User content is only ever
// set as text, never as markup.
"use strict";
(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const csrf = () => { const m = $('meta[name="csrf-token"]'); return m ? m.content : ""; };

  // MLflow's client prints links such as http://host/#/experiments/1/runs/abc:
  // the same paths exist here without the '#'.
  if (location.pathname === "/" && /^#\/(experiments|models|compare-runs)/.test(location.hash)) {
    let target = location.hash.slice(1);
    target = target.replace(/^\/compare-runs\?runs=\[?([^\]&]*)\]?.*$/, (_, ids) =>
      "/compare?runs=" + decodeURIComponent(ids).replace(/["\s]/g, ""));
    location.replace(target);
    return;
  }

  function toast(message, bad) {
    const div = document.createElement("div");
    div.className = "toast" + (bad ? " bad" : "");
    div.textContent = message;
    document.body.appendChild(div);
    setTimeout(() => div.remove(), bad ? 8000 : 3500);
  }

  async function api(method, path, body) {
    const options = { method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf() } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    const text = await response.text();
    let data = {};
    try { data = text ? JSON.parse(text) : {}; } catch (_) { data = { message: text }; }
    if (!response.ok) {
      const error = new Error(data.message || response.statusText);
      error.code = data.error_code;
      error.status = response.status;
      throw error;
    }
    return data;
  }
  const mlflow = (method, path, body) => api(method, "/api/2.0/mlflow/" + path, body);
  const v1 = (method, path, body) => api(method, "/api/v1/" + path, body);
  const fail = (error) => toast(error.message, true);
  const reload = () => location.reload();

  // ------------------------------------------------------ state in the URL
  // What a page's script changes (chart axes, smoothing, zoom, scatter
  // axes) is written back to the query string, so reloading or sharing the
  // URL shows the same thing; "Save view" keeps long URLs under a short link.
  const urlState = {
    get(key) { return new URLSearchParams(location.search).get(key); },
    set(values) {
      const params = new URLSearchParams(location.search);
      Object.entries(values).forEach(([key, value]) => {
        if (value === null || value === undefined || value === "") params.delete(key); else params.set(key, value);
      });
      const search = params.toString();
      history.replaceState(null, "", location.pathname + (search ? "?" + search : "") + location.hash);
    },
  };
  on(".js-save-view", async () => {
    const box = $(".saved-view"), link = $(".js-view-link");
    try {
      const saved = await api("POST", "/ui/views", { target: location.pathname + location.search + location.hash });
      link.value = location.origin + saved.url;
      box.hidden = false;
      link.focus(); link.select();
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(link.value).then(() => toast("Link copied"), () => {});
    } catch (e) { fail(e); }
  });
  on(".js-close-view", () => { $(".saved-view").hidden = true; });

  // ---------------------------------------------------------------- keyboard
  const help = $("#help");
  $$(".help-toggle").forEach((b) => b.addEventListener("click", () => { help.hidden = !help.hidden; }));
  function rows() { return $$("table.navigable tbody tr[data-href]"); }
  let cursor = -1;
  function moveCursor(step) {
    const all = rows();
    if (!all.length) return;
    all.forEach((r) => r.classList.remove("current"));
    cursor = Math.max(0, Math.min(all.length - 1, cursor + step));
    all[cursor].classList.add("current");
    all[cursor].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(event.target.tagName);
    if (event.key === "Escape") { if (typing) event.target.blur(); if (help) help.hidden = true; return; }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const all = rows();
    switch (event.key) {
      case "/": { const box = $("input.search"); if (box) { event.preventDefault(); box.focus(); box.select(); } break; }
      case "j": moveCursor(1); break;
      case "k": moveCursor(-1); break;
      case "x": if (all[cursor]) { const box = $("input.js-select", all[cursor]); if (box) { box.checked = !box.checked; box.dispatchEvent(new Event("change", { bubbles: true })); } } break;
      case "c": compareSelected(); break;
      case "Enter": if (all[cursor]) location.href = all[cursor].dataset.href; break;
      case "?": if (help) help.hidden = !help.hidden; break;
    }
  });

  // --------------------------------------------------------------- selection
  function selected() { return $$("input.js-select:checked").map((b) => b.value); }
  function refreshSelection() {
    const ids = selected();
    $$("input.js-select").forEach((b) => b.closest("tr").classList.toggle("selected", b.checked));
    const count = $(".js-selected-count");
    if (count) count.textContent = ids.length + " selected";
    $$(".bulk button").forEach((b) => { b.disabled = ids.length === 0 || (b.classList.contains("js-compare") && ids.length < 1); });
  }
  document.addEventListener("change", (event) => {
    if (event.target.matches("input.js-select-all")) {
      $$("input.js-select").forEach((b) => { b.checked = event.target.checked; });
    }
    if (event.target.matches("input.js-select, input.js-select-all")) refreshSelection();
  });
  function compareSelected() {
    const ids = selected();
    if (ids.length) location.href = "/compare?runs=" + ids.map(encodeURIComponent).join(",");
  }
  on(".js-compare", compareSelected);
  on(".js-delete-runs", async () => {
    if (!confirm("Delete " + selected().length + " runs?")) return;
    try { for (const id of selected()) await mlflow("POST", "runs/delete", { run_id: id }); reload(); } catch (e) { fail(e); }
  });
  on(".js-restore-runs", async () => {
    try { for (const id of selected()) await mlflow("POST", "runs/restore", { run_id: id }); reload(); } catch (e) { fail(e); }
  });
  on(".js-tag-runs", async () => {
    const pair = prompt("Tag the selected runs: key=value");
    if (!pair || pair.indexOf("=") < 1) return;
    const key = pair.slice(0, pair.indexOf("=")).trim(), value = pair.slice(pair.indexOf("=") + 1).trim();
    try { for (const id of selected()) await mlflow("POST", "runs/set-tag", { run_id: id, key, value }); reload(); } catch (e) { fail(e); }
  });
  function on(selector, handler) {
    document.addEventListener("click", (event) => {
      const target = event.target.closest(selector);
      if (target) { event.preventDefault(); handler(target, event); }
    });
  }
  function onSubmit(selector, handler) {
    document.addEventListener("submit", (event) => {
      const form = event.target.closest(selector);
      if (form) { event.preventDefault(); handler(form, new FormData(form)); }
    });
  }
  $$("table.navigable tbody tr[data-href]").forEach((row) => row.addEventListener("dblclick", () => { location.href = row.dataset.href; }));

  // ------------------------------------------------------------- experiments
  onSubmit(".js-create-experiment", async (form, data) => {
    try { const made = await mlflow("POST", "experiments/create", { name: data.get("name") }); location.href = "/experiments/" + made.experiment_id; } catch (e) { fail(e); }
  });
  const experimentOf = (button) => button.closest("tr").dataset.experiment;
  on(".js-rename-experiment", async (button) => {
    const name = prompt("New name", button.dataset.name);
    if (!name) return;
    try { await mlflow("POST", "experiments/update", { experiment_id: experimentOf(button), new_name: name }); reload(); } catch (e) { fail(e); }
  });
  on(".js-delete-experiment", async (button) => {
    if (!confirm("Delete this experiment and its runs?")) return;
    try { await mlflow("POST", "experiments/delete", { experiment_id: experimentOf(button) }); reload(); } catch (e) { fail(e); }
  });
  on(".js-restore-experiment", async (button) => {
    try { await mlflow("POST", "experiments/restore", { experiment_id: experimentOf(button) }); reload(); } catch (e) { fail(e); }
  });

  // ---------------------------------------------------------------- run page
  onSubmit(".js-set-tag", async (form, data) => {
    try { await mlflow("POST", "runs/set-tag", { run_id: form.dataset.run, key: data.get("key"), value: data.get("value") || "" }); reload(); } catch (e) { fail(e); }
  });
  on(".js-delete-tag", async (button) => {
    const run = button.closest("table").dataset.run;
    try { await mlflow("POST", "runs/delete-tag", { run_id: run, key: button.dataset.key }); reload(); } catch (e) { fail(e); }
  });
  $$("a.js-preview").forEach((a) => { a.target = "preview"; });

  // ---------------------------------------------------------------- registry
  onSubmit(".js-create-model", async (form, data) => {
    try { await mlflow("POST", "registered-models/create", { name: data.get("name") }); location.href = "/models/" + encodeURIComponent(data.get("name")); } catch (e) { fail(e); }
  });
  onSubmit(".js-promote", async (form, data) => {
    const name = form.dataset.model, version = data.get("version"), alias = (data.get("alias") || "").trim(), stage = data.get("stage");
    const result = $(".js-promote-result", form.parentElement);
    const say = (text) => { if (result) result.textContent = text; };
    if (!alias && !stage) { say("Give an alias or a stage."); return; }
    try {
      if (form.dataset.workflow === "true") {
        const body = { name, version, comment: data.get("comment") || "" };
        if (alias) body.alias = alias; else body.stage = stage;
        const made = await v1("POST", "transition-requests", body);
        say("Request #" + made.request_id + " is " + made.status + ": an approver decides it.");
        setTimeout(reload, 800);
      } else if (alias) {
        await mlflow("POST", "registered-models/alias", { name, alias, version });
        reload();
      } else {
        await mlflow("POST", "model-versions/transition-stage", { name, version, stage, archive_existing_versions: false });
        reload();
      }
    } catch (e) { say(e.message); fail(e); }
  });
  on(".js-decide", async (button) => {
    const id = button.closest("tr").dataset.request, decision = button.dataset.decision;
    const comment = prompt(decision === "approve" ? "Approve: comment" : "Reject: why?") ;
    if (comment === null) return;
    try { await v1("POST", "transition-requests/" + id + "/" + decision, { comment }); reload(); } catch (e) { fail(e); }
  });

  // ------------------------------------------------------------- deployments
  onSubmit(".js-create-deployment", async (form, data) => {
    const result = $(".js-result", form.parentElement);
    if (result) result.textContent = "Loading and warming the model…";
    try { await v1("POST", "deployments", { name: data.get("name"), model: data.get("model") }); location.href = "/deployments/" + encodeURIComponent(data.get("name")); }
    catch (e) { if (result) result.textContent = e.message; fail(e); }
  });
  onSubmit(".js-rollout", async (form, data) => {
    const name = form.dataset.deployment, action = data.get("action"), model = data.get("model"), weight = parseInt(data.get("weight"), 10);
    const result = $(".js-result", form.parentElement);
    const path = "deployments/" + encodeURIComponent(name);
    try {
      if (action === "update" || action === "blue_green") await v1("PATCH", path, { model, strategy: action === "blue_green" ? "blue_green" : "replace" });
      else if (action === "canary") await v1("POST", path + "/canary", weight ? { model, weight } : { model });
      else if (action === "ab") await v1("POST", path + "/ab", weight ? { model, weight } : { model });
      else if (action === "shadow") await v1("POST", path + "/shadow", weight ? { model, percent: weight } : { model });
      reload();
    } catch (e) { if (result) result.textContent = e.message; fail(e); }
  });
  on(".js-deployment-action", async (button) => {
    try { await v1("POST", "deployments/" + encodeURIComponent(button.dataset.deployment) + "/" + button.dataset.action, {}); reload(); } catch (e) { fail(e); }
  });
  // Explain a prediction: the request goes to the deployment's explain
  // route; the first row's contributions to the last output (a
  // classifier's positive class) are drawn largest first, as bars from a
  // middle line (up: pushes the prediction up).
  let explained = false;
  onSubmit(".js-explain", async (form, data) => {
    const shown = $(".js-explanation");
    let body;
    try { body = JSON.parse(data.get("body")); } catch (e) { fail(new Error("The request is not JSON: " + e.message)); return; }
    try {
      const answer = await api("POST", "/deployments/" + encodeURIComponent(form.dataset.deployment) + "/explain", body);
      explained = true;
      shown.replaceChildren(contributions(answer));
    } catch (e) { shown.replaceChildren(); fail(e); }
  });
  function contributions(answer) {
    const o = answer.outputs.length - 1, row = answer.values[0] || [];
    const items = answer.features.map((name, f) => ({ name, value: row[f][o] }))
      .sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
    const largest = Math.max(1e-300, ...items.map((i) => Math.abs(i.value)));
    const box = document.createElement("div");
    box.className = "contributions";
    const summary = document.createElement("p");
    summary.textContent = "Output " + answer.outputs[o] + " (" + answer.output_space + "): prediction " +
      fmt(answer.predictions[0][o]) + " = base value " + fmt(answer.base_values[o]) + " + the contributions below. " +
      "Method " + answer.method + " (" + answer.value_function + " values), model version " + answer.model_version + ".";
    box.appendChild(summary);
    const table = document.createElement("table");
    table.className = "grid compact";
    const svgNs = "http://www.w3.org/2000/svg";
    items.forEach((item) => {
      const tr = table.insertRow();
      const name = document.createElement("th");
      name.textContent = item.name;
      tr.appendChild(name);
      const bars = tr.insertCell();
      bars.className = "bars";
      const svg = document.createElementNS(svgNs, "svg");
      svg.setAttribute("viewBox", "0 0 100 10");
      svg.setAttribute("preserveAspectRatio", "none");
      const rect = document.createElementNS(svgNs, "rect");
      const width = 50 * Math.abs(item.value) / largest;
      rect.setAttribute("x", String(item.value >= 0 ? 50 : 50 - width));
      rect.setAttribute("y", "1");
      rect.setAttribute("height", "8");
      rect.setAttribute("width", String(width));
      rect.setAttribute("class", item.value >= 0 ? "up" : "down");
      svg.appendChild(rect);
      bars.appendChild(svg);
      const value = tr.insertCell();
      value.className = "num";
      value.textContent = (item.value >= 0 ? "+" : "") + fmt(item.value);
    });
    box.appendChild(table);
    return box;
  }
  function fmt(x) { return typeof x === "number" ? (Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(3) : x.toFixed(4)) : String(x); }
  if ($(".minis") && !$(".js-rollout input:focus")) {
    // Numbers refresh by reloading, unless the viewer is typing or reading
    // an explanation.
    setTimeout(() => { if (!explained && (!document.activeElement || document.activeElement === document.body)) reload(); }, 10000);
  }

  // -------------------------------------------------------------- governance
  onSubmit(".js-create-token", async (form, data) => {
    const body = { name: data.get("name"), scopes: data.get("scope").split(",") };
    const days = parseInt(data.get("days"), 10);
    if (days > 0) body.expires_in_seconds = days * 86400;
    try {
      const made = await v1("POST", "tokens", body);
      const shown = $(".js-new-token");
      shown.textContent = "Your new token (shown once): " + made.token;
      shown.hidden = false;
    } catch (e) { fail(e); }
  });
  on(".js-revoke-token", async (button) => {
    try { await v1("DELETE", "tokens/" + encodeURIComponent(button.closest("tr").dataset.token)); reload(); } catch (e) { fail(e); }
  });
  onSubmit(".js-create-user", async (form, data) => {
    try { await v1("POST", "users", { username: data.get("username"), password: data.get("password"), is_admin: data.get("is_admin") === "on" }); reload(); } catch (e) { fail(e); }
  });
  onSubmit(".js-grant", async (form, data) => {
    try { await v1("PUT", "permissions", Object.fromEntries(data.entries())); reload(); } catch (e) { fail(e); }
  });
  on(".js-revoke-grant", async (button) => {
    const row = button.closest("tr").dataset;
    const grant = { resource_type: row.resourceType, resource_id: row.resourceId, principal: row.principal, permission: row.permission };
    if (!confirm("Revoke " + grant.permission + " on " + grant.resource_type + " " + grant.resource_id + " from " + grant.principal + "?")) return;
    try { await v1("DELETE", "permissions", grant); reload(); } catch (e) { fail(e); }
  });
  on(".js-user-flag", async (button) => {
    const user = button.closest("tr").dataset.user;
    try { await v1("PATCH", "users/" + encodeURIComponent(user), { [button.dataset.field]: button.dataset.value === "true" }); reload(); } catch (e) { fail(e); }
  });
  onSubmit(".js-create-group", async (form, data) => {
    try { await v1("POST", "groups", { name: data.get("name") }); reload(); } catch (e) { fail(e); }
  });
  onSubmit(".js-add-member", async (form, data) => {
    try { await v1("PUT", "groups/" + encodeURIComponent(data.get("group")) + "/members/" + encodeURIComponent(data.get("username"))); reload(); } catch (e) { fail(e); }
  });
  on(".js-remove-member", async (button) => {
    const group = button.closest("tr").dataset.group;
    try { await v1("DELETE", "groups/" + encodeURIComponent(group) + "/members/" + encodeURIComponent(button.dataset.username)); reload(); } catch (e) { fail(e); }
  });
  on(".js-delete-group", async (button) => {
    const group = button.closest("tr").dataset.group;
    if (!confirm("Delete group " + group + " and its grants?")) return;
    try { await v1("DELETE", "groups/" + encodeURIComponent(group)); reload(); } catch (e) { fail(e); }
  });

  // ------------------------------------------------------------------ charts
  const COLORS = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795", "#c53030", "#718096", "#b7791f", "#2c7a7b"];
  const colorOf = (i) => COLORS[i % COLORS.length];
  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) return [lo];
    const step0 = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(t);
    return ticks;
  }
  const short = (v) => Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : +v.toPrecision(4) + "";
  function xLabel(mode, v) {
    if (mode === "time") return new Date(v).toISOString().slice(11, 19);
    if (mode === "relative") return short(v / 1000) + "s";
    return short(v);
  }

  // A loop, not Math.min(...values): spreading a chart's hundred thousand
  // values as arguments overflows the call stack.
  function extent(values) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
    return [lo, hi];
  }

  function drawChart(chart, payload, state) {
    const canvas = $("canvas", chart), ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 420, height = canvas.clientHeight || 240;
    canvas.width = width * ratio; canvas.height = height * ratio;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const pad = { l: 52, r: 10, t: 8, b: 22 };
    let xs = [], ys = [];
    const ty = (v) => (state.log ? (v > 0 ? Math.log10(v) : NaN) : v);
    payload.series.forEach((s) => s.points.forEach((p) => { xs.push(p[0]); ys.push(ty(p[2])); ys.push(ty(p[3])); }));
    ys = ys.filter(Number.isFinite);
    if (!xs.length || !ys.length) { ctx.fillStyle = "#6b7385"; ctx.fillText("no data", width / 2 - 20, height / 2); return null; }
    let [x0, x1] = extent(xs), [y0, y1] = extent(ys);
    if (x1 === x0) { x1 = x0 + 1; }
    if (y1 === y0) { y1 = y0 + 1; y0 -= 1; }
    const px = (x) => pad.l + (x - x0) / (x1 - x0) * (width - pad.l - pad.r);
    const py = (y) => height - pad.b - (y - y0) / (y1 - y0) * (height - pad.t - pad.b);
    ctx.font = "10px system-ui"; ctx.fillStyle = "#6b7385"; ctx.strokeStyle = "#edf0f4"; ctx.lineWidth = 1;
    niceTicks(y0, y1, 5).forEach((t) => { const y = py(t); ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(width - pad.r, y); ctx.stroke(); ctx.fillText(state.log ? "1e" + short(t) : short(t), 2, y + 3); });
    niceTicks(x0, x1, 5).forEach((t) => { const x = px(t); ctx.fillText(xLabel(state.x, t), x - 12, height - 6); });
    payload.series.forEach((s, i) => {
      const color = colorOf(i);
      const points = s.points.filter((p) => Number.isFinite(ty(p[1])));
      if (points.some((p) => p[2] !== p[3])) {
        ctx.globalAlpha = 0.18; ctx.fillStyle = color; ctx.beginPath();
        points.forEach((p, j) => { const x = px(p[0]), y = py(ty(p[3])); if (j) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
        for (let j = points.length - 1; j >= 0; j--) ctx.lineTo(px(points[j][0]), py(ty(points[j][2])));
        ctx.closePath(); ctx.fill(); ctx.globalAlpha = 1;
      }
      ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
      points.forEach((p, j) => { const x = px(p[0]), y = py(ty(p[1])); if (j) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
      ctx.stroke();
      // A metric logged once (a final score) is a dot, not an invisible line.
      if (points.length === 1) { ctx.fillStyle = color; ctx.beginPath(); ctx.arc(px(points[0][0]), py(ty(points[0][1])), 3, 0, 7); ctx.fill(); }
    });
    return { px, py, x0, x1, pad, width, invert: (cx) => x0 + (cx - pad.l) / (width - pad.l - pad.r) * (x1 - x0) };
  }

  // One coloured key per series (the first 40; a count for the rest).
  function drawLegend(legend, names) {
    legend.textContent = "";
    names.slice(0, 40).forEach((name, i) => {
      const key = document.createElement("span"); key.className = "key";
      const swatch = document.createElement("i"); swatch.style.background = colorOf(i);
      key.append(swatch, document.createTextNode(name));
      legend.append(key);
    });
    if (names.length > 40) legend.append(document.createTextNode("and " + (names.length - 40) + " more"));
  }

  function setupPanel(panel) {
    const form = $(".chart-controls", panel), grid = $(".charts-grid", panel);
    const runs = panel.dataset.runs;
    const zoom = {};
    // The chart settings a URL carries: cx, csmooth, clog, cm (metrics), czoom.
    const setIfOption = (select, value) => { if (value !== null && Array.from(select.options).some((o) => o.value === value)) select.value = value; };
    setIfOption(form.elements.x, urlState.get("cx"));
    setIfOption(form.elements.smooth, urlState.get("csmooth"));
    if (urlState.get("clog") === "1") form.elements.log.checked = true;
    const wanted = urlState.get("cm");
    if (wanted !== null) {
      const names = wanted.split(",");
      Array.from(form.elements.metrics.options).forEach((o) => { o.selected = names.includes(o.value); });
    }
    (urlState.get("czoom") || "").split("|").forEach((part) => {
      const pieces = part.split("~");
      if (pieces.length === 3 && Number.isFinite(+pieces[1]) && Number.isFinite(+pieces[2])) zoom[pieces[0]] = [+pieces[1], +pieces[2]];
    });
    async function render() {
      const state = {
        x: form.elements.x.value, smooth: form.elements.smooth.value, log: form.elements.log.checked,
        metrics: Array.from(form.elements.metrics.selectedOptions).map((o) => o.value),
        group: (document.querySelector(".scatter-controls select[name=sg]") || {}).value || "",
      };
      urlState.set({
        cx: state.x === form.elements.x.options[0].value ? "" : state.x,
        csmooth: state.smooth === form.elements.smooth.options[0].value ? "" : state.smooth,
        clog: state.log ? "1" : "",
        cm: state.metrics.join(","),
        czoom: Object.entries(zoom).map(([metric, [a, b]]) => metric + "~" + a + "~" + b).join("|"),
      });
      grid.textContent = "";
      for (const metric of state.metrics) {
        const chart = document.createElement("div"); chart.className = "chart"; chart.dataset.metric = metric;
        const title = document.createElement("h4"); title.textContent = metric; chart.appendChild(title);
        const canvas = document.createElement("canvas"); chart.appendChild(canvas);
        const tip = document.createElement("div"); tip.className = "tip"; chart.appendChild(tip);
        const legend = document.createElement("div"); legend.className = "legend"; chart.appendChild(legend);
        grid.appendChild(chart);
        const params = new URLSearchParams({ runs, metric, x: state.x, smooth: state.smooth, px: String(Math.max(200, Math.round(canvas.clientWidth || 420))) });
        if (state.group) params.set("group", state.group);
        if (zoom[metric]) { params.set("xmin", zoom[metric][0]); params.set("xmax", zoom[metric][1]); }
        let payload;
        try { payload = await api("GET", "/ui/api/series?" + params.toString()); } catch (e) { legend.textContent = e.message; continue; }
        const geometry = drawChart(chart, payload, state);
        chart.dataset.series = String(payload.series.length);
        drawLegend(legend, payload.series.map((s) => s.name));
        if (!geometry) continue;
        let dragFrom = null;
        canvas.addEventListener("mousemove", (event) => {
          const rect = canvas.getBoundingClientRect(), cx = event.clientX - rect.left;
          const x = geometry.invert(cx);
          const lines = payload.series.map((s) => {
            let best = null;
            s.points.forEach((p) => { if (!best || Math.abs(p[0] - x) < Math.abs(best[0] - x)) best = p; });
            return best ? s.name + ": " + short(best[1]) + (best[2] !== best[3] ? " [" + short(best[2]) + ", " + short(best[3]) + "]" : "") : null;
          }).filter(Boolean).slice(0, 12);
          tip.textContent = xLabel(state.x, x) + "\n";
          tip.textContent = [xLabel(state.x, x)].concat(lines).join("  |  ");
          tip.style.display = "block"; tip.style.left = Math.min(cx + 12, rect.width - 200) + "px"; tip.style.top = "28px";
        });
        canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
        canvas.addEventListener("mousedown", (event) => { dragFrom = event.clientX - canvas.getBoundingClientRect().left; });
        canvas.addEventListener("mouseup", (event) => {
          const to = event.clientX - canvas.getBoundingClientRect().left;
          if (dragFrom !== null && Math.abs(to - dragFrom) > 8) {
            const a = geometry.invert(Math.min(dragFrom, to)), b = geometry.invert(Math.max(dragFrom, to));
            zoom[metric] = [a, b];
            render();
          }
          dragFrom = null;
        });
      }
    }
    form.addEventListener("change", render);
    $(".js-reset-zoom", panel).addEventListener("click", () => { Object.keys(zoom).forEach((k) => delete zoom[k]); render(); });
    panel.render = render;
    render();
  }
  // The scatter's axes and grouping come from the URL before the charts
  // draw, since the charts group by the same choice.
  const scatterControls = $(".scatter-controls");
  if (scatterControls) ["sx", "sy", "sg"].forEach((key) => {
    const value = urlState.get(key), select = scatterControls.elements[key];
    if (select && value !== null && Array.from(select.options).some((o) => o.value === value)) select.value = value;
  });
  $$(".chart-panel").forEach(setupPanel);
  on(".js-chart-metric", (button) => {
    const panel = $(".chart-panel"); if (!panel) return;
    const select = $(".chart-controls", panel).elements.metrics;
    Array.from(select.options).forEach((o) => { if (o.value === button.dataset.metric) o.selected = true; });
    panel.render(); panel.scrollIntoView();
  });

  // ----------------------------------------- compare: parallel coordinates, scatter
  const dataBlock = $("#compare-data");
  if (dataBlock) {
    const data = JSON.parse(dataBlock.textContent);
    const keys = Array.from(new Set(data.runs.flatMap((r) => Object.keys(r.values))));
    drawParallel($("canvas.parallel"), data.runs, keys.filter((k) => data.runs.some((r) => typeof r.values[k] === "number")).slice(0, 12));
    const controls = $(".scatter-controls");
    const redraw = () => {
      drawScatter($("canvas.scatter"), data.runs, controls.elements.sx.value, controls.elements.sy.value, controls.elements.sg.value);
      urlState.set({ sx: controls.elements.sx.value, sy: controls.elements.sy.value, sg: controls.elements.sg.value });
    };
    controls.addEventListener("change", () => { redraw(); const panel = $(".chart-panel"); if (panel) panel.render(); });
    redraw();
    const diff = $(".js-diff-only");
    if (urlState.get("diff") === "0") diff.checked = false;
    const applyDiff = () => {
      $$(".params-table tr.same").forEach((tr) => { tr.hidden = diff.checked; });
      urlState.set({ diff: diff.checked ? "" : "0" });
    };
    diff.addEventListener("change", applyDiff); applyDiff();
  }
  function drawParallel(canvas, runs, axes) {
    if (!canvas || !axes.length) return;
    const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height, pad = 30;
    ctx.clearRect(0, 0, w, h); ctx.font = "11px system-ui";
    const ranges = axes.map((k) => { const v = runs.map((r) => r.values[k]).filter((x) => typeof x === "number"); return extent(v); });
    const ax = (i) => pad + i * (w - 2 * pad) / Math.max(1, axes.length - 1);
    const ay = (i, v) => { const [lo, hi] = ranges[i]; return h - pad - (hi > lo ? (v - lo) / (hi - lo) : 0.5) * (h - 2 * pad); };
    runs.forEach((r, ri) => {
      ctx.strokeStyle = colorOf(ri); ctx.globalAlpha = runs.length > 200 ? 0.25 : 0.7; ctx.beginPath();
      let started = false;
      axes.forEach((k, i) => { const v = r.values[k]; if (typeof v !== "number") { started = false; return; } const x = ax(i), y = ay(i, v); if (started) ctx.lineTo(x, y); else ctx.moveTo(x, y); started = true; });
      ctx.stroke();
    });
    ctx.globalAlpha = 1; ctx.fillStyle = "#1d2330"; ctx.strokeStyle = "#6b7385";
    axes.forEach((k, i) => { const x = ax(i); ctx.beginPath(); ctx.moveTo(x, pad); ctx.lineTo(x, h - pad); ctx.stroke(); ctx.fillText(k.replace(/^(params|metrics)\./, ""), x - 20, pad - 12); ctx.fillText(short(ranges[i][1]), x + 3, pad + 4); ctx.fillText(short(ranges[i][0]), x + 3, h - pad); });
  }
  function drawScatter(canvas, runs, kx, ky, kg) {
    if (!canvas) return;
    const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height, pad = 40;
    ctx.clearRect(0, 0, w, h); ctx.font = "11px system-ui";
    const pts = runs.filter((r) => r.values[ky] !== undefined && r.values[kx] !== undefined);
    if (!pts.length) { ctx.fillText("no runs have both values", w / 2 - 60, h / 2); return; }
    const categorical = pts.some((r) => typeof r.values[kx] !== "number");
    const cats = categorical ? Array.from(new Set(pts.map((r) => String(r.values[kx])))) : [];
    const xv = (r) => categorical ? cats.indexOf(String(r.values[kx])) : r.values[kx];
    const xsv = pts.map(xv), ysv = pts.map((r) => r.values[ky]);
    const [x0, x1] = extent(xsv), [y0, y1] = extent(ysv);
    const px = (v) => pad + (x1 > x0 ? (v - x0) / (x1 - x0) : 0.5) * (w - 2 * pad);
    const py = (v) => h - pad - (y1 > y0 ? (v - y0) / (y1 - y0) : 0.5) * (h - 2 * pad);
    const groups = kg ? Array.from(new Set(pts.map((r) => String(r.values[kg])))) : [""];
    pts.forEach((r, i) => { ctx.fillStyle = colorOf(kg ? groups.indexOf(String(r.values[kg])) : 0); ctx.beginPath(); ctx.arc(px(xsv[i]), py(ysv[i]), 4, 0, 7); ctx.fill(); });
    ctx.fillStyle = "#1d2330";
    ctx.fillText(ky + " " + short(y1), 4, pad - 6); ctx.fillText(short(y0), 4, h - pad);
    ctx.fillText(kx + (categorical ? "" : ": " + short(x0) + " … " + short(x1)), pad, h - 8);
    if (categorical) cats.forEach((c, i) => ctx.fillText(c.slice(0, 12), px(i) - 10, h - pad + 14));
    if (kg) groups.forEach((g, i) => { ctx.fillStyle = colorOf(i); ctx.fillText("● " + g, w - 140, 14 + 14 * i); });
  }
})();
