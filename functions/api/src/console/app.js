// batchops console. A client of the JSON job API, like the CLI: it lists jobs (GET /jobs),
// shows one (GET /jobs/{id}) and acts on it (POST /jobs/{id}/status and /priority). Which
// actions a job offers comes from DescribeJob's AllowedUpdates; nothing here decides job
// rules. The DOM is built with createElement and textContent only: descriptions, keys and
// messages are user data.
"use strict";
(function () {
  const STATUSES = ["New", "Preparing", "Suspended", "Ready", "Active", "Pausing", "Paused",
    "Completing", "Complete", "Cancelling", "Cancelled", "Failing", "Failed"];
  const ENDED = new Set(["Complete", "Failed", "Cancelled"]);
  const TONE = {
    Complete: ["ok", "✓"], Failed: ["bad", "✕"], Failing: ["bad", "!"],
    Cancelled: ["off", "⊘"], Cancelling: ["off", "…"], Suspended: ["wait", "?"],
    Paused: ["wait", "Ⅱ"], Pausing: ["wait", "…"], Active: ["run", "▶"],
    Completing: ["run", "…"], Ready: ["run", "•"], Preparing: ["run", "…"], New: ["run", "•"],
  };
  // What each requestable status is called on a button.
  const ACTIONS = {
    Ready: { label: "Confirm", cls: "primary", reason: "confirmed in the console" },
    Paused: { label: "Pause", cls: "", reason: "paused in the console" },
    Active: { label: "Resume", cls: "primary", reason: "resumed in the console" },
    Cancelled: { label: "Cancel", cls: "danger", reason: "cancelled in the console" },
  };

  const view = document.getElementById("view");
  const alertBox = document.getElementById("alert");
  const live = document.getElementById("live");
  // The current view's controller: a new view aborts the old one's requests and timers.
  let current = null;
  // The token of the page before each page (for "Newer"), kept for the tab's life so a
  // reload, Back or Forward keeps it.
  const previousPage = {
    get(token) { try { return sessionStorage.getItem("batchops.prev." + token); } catch (_) { return null; } },
    set(token, prev) { try { sessionStorage.setItem("batchops.prev." + token, prev); } catch (_) { /* private mode */ } },
  };

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "value") node.value = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // Tables shown as cards on a phone lose their table semantics with `display: block`; the
  // roles keep them for screen readers.
  function keepTableRoles(table) {
    table.setAttribute("role", "table");
    table.querySelectorAll("thead, tbody").forEach((g) => g.setAttribute("role", "rowgroup"));
    table.querySelectorAll("tr").forEach((r) => r.setAttribute("role", "row"));
    table.querySelectorAll("th").forEach((h) => h.setAttribute("role", "columnheader"));
    table.querySelectorAll("td").forEach((d) => d.setAttribute("role", "cell"));
    return table;
  }

  function showError(e) {
    if (e && e.name === "AbortError") return;
    alertBox.textContent = e && e.Code ? e.Code + ": " + e.Message : "Error: " + (e && e.message || e);
  }
  function clearError() { alertBox.textContent = ""; }

  async function api(method, path, body, signal) {
    const init = { method, credentials: "omit", signal, headers: { accept: "application/json" } };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) {
      throw { Code: (data && data.Code) || "HTTP " + response.status,
        Message: (data && data.Message) || response.statusText };
    }
    return data;
  }

  function badge(status) {
    const [tone, glyph] = TONE[status] || ["off", "•"];
    return el("span", { class: "status " + tone, "data-status": status },
      el("span", { "aria-hidden": "true", text: glyph }), status);
  }

  function counts(p) {
    const total = Number(p.TotalNumberOfTasks || 0);
    const done = Number(p.NumberOfTasksSucceeded || 0) + Number(p.NumberOfTasksFailed || 0);
    return { total, done, pct: total > 0 ? Math.floor((done * 100) / total) : 0 };
  }

  function bar(p, label) {
    const c = counts(p);
    const text = c.total > 0 ? c.done + " / " + c.total + " (" + c.pct + "%)" : c.done + " / ?";
    return el("div", { class: "progress" },
      el("progress", { max: Math.max(c.total, 1), value: Math.min(c.done, Math.max(c.total, 1)),
        "aria-label": label + ": " + text }),
      el("span", { class: "bar-text", "data-role": "progress-text", text }));
  }

  function when(t) {
    if (!t) return "—";
    const d = new Date(t);
    return isNaN(d) ? t : d.toLocaleString();
  }

  function operationName(op) {
    if (!op) return "—";
    return typeof op === "string" ? op : Object.keys(op)[0] || "—";
  }

  // Chained timeouts, stopped by the view's controller and while the page is hidden; an
  // error doubles the interval up to 30 s.
  function poll(ctl, every, tick) {
    let wait = every;
    const run = async () => {
      if (ctl.signal.aborted) return;
      if (document.hidden) { ctl.timer = setTimeout(run, every); return; }
      try {
        const again = await tick();
        wait = every;
        if (!again) return;
      } catch (e) {
        if (ctl.signal.aborted) return;
        showError(e);
        wait = Math.min(wait * 2, 30000);
      }
      if (!ctl.signal.aborted) ctl.timer = setTimeout(run, wait);
    };
    ctl.timer = setTimeout(run, every);
  }

  function newView() {
    if (current) { current.abort(); clearTimeout(current.timer); }
    current = new AbortController();
    clearError();
    view.replaceChildren();
    return current;
  }

  function heading(text) {
    const h = el("h1", { tabindex: "-1", text });
    view.append(h);
    h.focus({ preventScroll: true });
    return h;
  }

  // ---- The job list -------------------------------------------------------------------

  function listHash(statuses, max, token) {
    const q = new URLSearchParams();
    if (statuses.length) q.set("status", statuses.join(","));
    if (max !== 25) q.set("max", String(max));
    if (token) q.set("token", token);
    const s = q.toString();
    return "#/" + (s ? "?" + s : "");
  }

  async function listView(params) {
    const ctl = newView();
    const statuses = (params.get("status") || "").split(",").filter((s) => STATUSES.includes(s));
    const asked = parseInt(params.get("max") || "", 10);
    const max = asked >= 1 && asked <= 1000 ? asked : 25;
    const token = params.get("token") || "";
    heading("Jobs");

    const boxes = STATUSES.map((s) => el("label", {},
      el("input", { type: "checkbox", name: "status", value: s, checked: statuses.includes(s) }), " ", s));
    const size = el("select", { id: "page-size", name: "max" },
      [...new Set([25, 50, 100, max])].sort((a, b) => a - b)
        .map((n) => el("option", { value: String(n), selected: n === max, text: String(n) })));
    const filters = el("form", { class: "filters", "aria-label": "Filter jobs",
      onsubmit: (ev) => {
        ev.preventDefault();
        const chosen = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
        location.hash = listHash(chosen, Number(size.value), "");
      } },
      el("fieldset", {}, el("legend", { text: "Status" }), boxes),
      el("label", { for: "page-size" }, "Rows per page "), size,
      el("button", { type: "submit", text: "Apply" }));
    view.append(filters);

    const body = el("tbody");
    const table = el("table", { class: "cards", id: "jobs" },
      el("caption", { text: statuses.length ? "Jobs in " + statuses.join(", ") + ", newest first" : "All jobs, newest first" }),
      el("thead", {}, el("tr", {}, ["Job", "Description", "Operation", "Priority", "Status", "Progress", "Created", "Ended"]
        .map((h) => el("th", { scope: "col", text: h })))),
      body);
    view.append(table);
    const pager = el("nav", { class: "pager", "aria-label": "Pages" });
    view.append(pager);

    let shown = null;
    const load = async () => {
      const q = new URLSearchParams();
      if (statuses.length) q.set("JobStatuses", statuses.join(","));
      q.set("MaxResults", String(max));
      if (token) q.set("NextToken", token);
      const answer = await api("GET", "/jobs?" + q.toString(), undefined, ctl.signal);
      clearError();
      const jobs = answer.Jobs || [];
      const open = jobs.some((j) => !ENDED.has(j.Status));
      // Unchanged: nothing is rebuilt, so keyboard focus stays where it is.
      const seen = JSON.stringify(answer);
      if (seen === shown) return open;
      shown = seen;
      body.replaceChildren(...jobs.map((j) => el("tr", { "data-job": j.JobId },
        el("td", { "data-label": "Job" }, el("a", { class: "id", href: "#/jobs/" + encodeURIComponent(j.JobId), text: j.JobId })),
        el("td", { "data-label": "Description", text: j.Description || "—" }),
        el("td", { "data-label": "Operation", text: operationName(j.Operation) }),
        el("td", { "data-label": "Priority", class: "num", text: String(j.Priority) }),
        el("td", { "data-label": "Status" }, badge(j.Status)),
        el("td", { "data-label": "Progress" }, bar(j.ProgressSummary || {}, "Progress of " + j.JobId)),
        el("td", { "data-label": "Created", text: when(j.CreationTime) }),
        el("td", { "data-label": "Ended", text: when(j.TerminationDate) }))));
      if (!jobs.length) {
        body.append(el("tr", {}, el("td", { colspan: "8", class: "empty", text: "No jobs." })));
      }
      keepTableRoles(table);
      const buttons = [];
      if (token) {
        buttons.push(el("button", { type: "button", text: "First",
          onclick: () => { location.hash = listHash(statuses, max, ""); } }));
        buttons.push(el("button", { type: "button", text: "Newer",
          onclick: () => { location.hash = listHash(statuses, max, previousPage.get(token) || ""); } }));
      }
      if (answer.NextToken) {
        buttons.push(el("button", { type: "button", text: "Older",
          onclick: () => { previousPage.set(answer.NextToken, token); location.hash = listHash(statuses, max, answer.NextToken); } }));
      }
      const hadFocus = pager.contains(document.activeElement) ? document.activeElement.textContent : null;
      pager.replaceChildren(...buttons, el("span", { class: "muted", text: jobs.length + " shown" }));
      if (hadFocus) (buttons.find((b) => b.textContent === hadFocus) || view.querySelector("h1")).focus();
      return open;
    };
    start(ctl, 5000, load);
  }

  // Loads a view, then polls while `load` says there is more to see; a failed first load is
  // retried with the poll's back-off.
  async function start(ctl, every, load) {
    try {
      if (!(await load())) return;
    } catch (e) {
      if (ctl.signal.aborted) return;
      showError(e);
    }
    poll(ctl, every, load);
  }

  // ---- A job's page -------------------------------------------------------------------

  function card(label, value, role) {
    return el("div", { class: "card" }, el("div", { class: "label", text: label }),
      el("div", { class: "value", "data-role": role, text: value }));
  }

  function pairs(entries) {
    return el("dl", { class: "pairs" }, entries.filter((e) => e[1] !== undefined && e[1] !== null && e[1] !== "")
      .map(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
  }

  function usd(n) { return typeof n === "number" ? "$" + n.toFixed(n < 1 ? 4 : 2) : "—"; }

  function rateText(samples, job) {
    // Tasks done over the last polls; else done ÷ time active.
    if (samples.length >= 2) {
      const a = samples[0];
      const b = samples[samples.length - 1];
      const secs = (b.t - a.t) / 1000;
      if (secs > 0 && b.done > a.done) return (b.done - a.done) / secs;
    }
    const c = counts(job.ProgressSummary || {});
    const active = Number(((job.ProgressSummary || {}).Timers || {}).ElapsedTimeInActiveSeconds || 0);
    return active > 0 && c.done > 0 ? c.done / active : null;
  }

  async function jobView(id) {
    const ctl = newView();
    heading("Job " + id);
    const head = el("div", { class: "head" });
    const actions = el("div", { class: "actions", id: "actions" });
    const progress = el("section", { "aria-labelledby": "h-progress" });
    const details = el("div");
    const raw = el("pre", { id: "raw" });
    view.append(head, actions, progress, details,
      el("details", {}, el("summary", { text: "The whole job (DescribeJob)" }), raw),
      el("p", {}, el("a", { href: "#/", text: "← All jobs" })));
    const samples = [];
    let shownStatus = null;
    let shownActions = null;
    // Answers are numbered: one that started before a later one was shown is dropped (a poll
    // begun before an action must not undo it on screen).
    let asked = 0;
    let drawn = 0;
    const buttons = el("span", { class: "actions" });
    const priorityInput = el("input", { type: "number", id: "priority", min: "0", max: "2147483647", required: true });
    const priorityForm = el("form", { "aria-label": "Priority", onsubmit: (ev) => {
      ev.preventDefault();
      act("/jobs/" + encodeURIComponent(id) + "/priority", { Priority: Number(priorityInput.value) });
    } }, el("label", { for: "priority", text: "Priority" }), priorityInput, el("button", { type: "submit", text: "Set priority" }));
    actions.append(buttons, priorityForm);

    const act = async (path, body) => {
      const all = actions.querySelectorAll("button");
      all.forEach((b) => { b.disabled = true; });
      try {
        await api("POST", path, body, ctl.signal);
        await load();
      } catch (e) {
        showError(e);
      } finally {
        all.forEach((b) => { b.disabled = false; });
      }
    };

    const confirmCancel = (button, path) => {
      const dialog = el("dialog", { "aria-labelledby": "cancel-title" },
        el("h2", { id: "cancel-title", text: "Cancel job " + id + "?" }),
        el("p", { text: "Tasks not yet run will not run. A cancelled job cannot be resumed." }),
        el("div", { class: "buttons" },
          el("button", { type: "button", text: "Keep job", onclick: () => dialog.close() }),
          el("button", { type: "button", class: "danger", text: "Cancel job",
            onclick: () => { dialog.close(); act(path, { RequestedJobStatus: "Cancelled", StatusUpdateReason: ACTIONS.Cancelled.reason }); } })));
      dialog.addEventListener("close", () => { dialog.remove(); if (button.isConnected) button.focus(); });
      view.append(dialog);
      dialog.showModal();
    };

    const renderActions = (job) => {
      const allowed = ((job.AllowedUpdates || {}).RequestedJobStatus) || [];
      priorityForm.hidden = !(job.AllowedUpdates || {}).Priority;
      if (document.activeElement !== priorityInput) priorityInput.value = String(job.Priority);
      const key = allowed.join(",");
      if (key === shownActions) return;
      shownActions = key;
      const path = "/jobs/" + encodeURIComponent(id) + "/status";
      const hadFocus = buttons.contains(document.activeElement);
      const made = allowed.filter((s) => ACTIONS[s]).map((s) => {
        const a = ACTIONS[s];
        const b = el("button", { type: "button", class: a.cls || null, "data-action": s, text: a.label });
        b.addEventListener("click", () => s === "Cancelled" ? confirmCancel(b, path)
          : act(path, { RequestedJobStatus: s, StatusUpdateReason: a.reason }));
        return b;
      });
      buttons.replaceChildren(...made);
      if (!made.length) buttons.append(el("span", { class: "muted", text: "No status change in this status." }));
      // The button pressed is gone (its action is done): the focus goes to the next action,
      // else to the page's heading, never to nowhere.
      if (hadFocus) (made[0] || view.querySelector("h1")).focus();
    };

    const render = (job) => {
      const p = job.ProgressSummary || {};
      const c = counts(p);
      if (shownStatus !== job.Status) {
        if (shownStatus !== null) live.textContent = "Job " + id + " is now " + job.Status;
        shownStatus = job.Status;
      }
      head.replaceChildren(badge(job.Status),
        el("span", { text: job.Description || "No description" }),
        el("span", { class: "muted", text: operationName(job.Operation) + " · priority " + job.Priority }));
      renderActions(job);
      samples.push({ t: Date.now(), done: c.done });
      while (samples.length > 5) samples.shift();
      const rate = rateText(samples, job);
      const left = c.total - c.done;
      const eta = rate && left > 0 && !ENDED.has(job.Status) ? Math.ceil(left / rate) + " s" : "—";
      progress.replaceChildren(el("h2", { id: "h-progress", text: "Progress" }),
        el("div", { class: "big" }, bar(p, "Progress")),
        el("div", { class: "grid" },
          card("Succeeded", String(p.NumberOfTasksSucceeded || 0), "succeeded"),
          card("Failed", String(p.NumberOfTasksFailed || 0), "failed"),
          card("Total", c.total > 0 ? String(c.total) : "not yet known", "total"),
          card("Rate", rate ? rate.toFixed(1) + " tasks/s" : "—", "rate"),
          card("Time left", eta, "eta")));

      const parts = [];
      parts.push(el("h2", { text: "Details" }), pairs([
        ["Created", when(job.CreationTime)], ["Ended", job.TerminationDate ? when(job.TerminationDate) : ""],
        ["Status reason", job.StatusUpdateReason], ["Suspended because", job.SuspendedCause],
        ["Manifest", job.Manifest && job.Manifest.Location ? job.Manifest.Location.ObjectArn : ""],
        ["Role", job.RoleArn], ["Confirmation required", job.ConfirmationRequired ? "yes" : "no"],
        ["Dry run", job.DryRun ? "yes" : ""],
      ]));
      if ((job.FailureReasons || []).length) {
        parts.push(el("h2", { text: "Failure reasons" }), el("ul", { id: "failure-reasons" },
          job.FailureReasons.map((f) => el("li", {}, el("strong", { "data-role": "failure-code", text: f.FailureCode }), ": ", f.FailureReason))));
      }
      parts.push(el("h2", { text: "Completion report" }));
      const s = job.ReportSummary;
      if (!job.Report || !job.Report.Enabled) {
        parts.push(el("p", { class: "muted", text: "No report was asked for." }));
      } else if (!s) {
        parts.push(el("p", { class: "muted", text: ENDED.has(job.Status) ? "No report was written." : "Written when the job ends." }));
      } else {
        parts.push(el("section", { id: "report", "aria-label": "Report summary" },
          pairs([["Location", s.ManifestArn]]),
          el("table", { id: "by-status" }, el("caption", { text: "Rows by status" }),
            el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Status" }), el("th", { scope: "col", text: "Rows" }))),
            el("tbody", {},
              el("tr", { "data-status": "succeeded" }, el("td", { text: "succeeded" }), el("td", { class: "num", text: String(s.Succeeded) })),
              el("tr", { "data-status": "failed" }, el("td", { text: "failed" }), el("td", { class: "num", text: String(s.Failed) })))),
          Object.keys(s.ByErrorCode || {}).length ? el("table", { id: "by-code" }, el("caption", { text: "Failed rows by error code" }),
            el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Error code" }), el("th", { scope: "col", text: "Rows" }))),
            el("tbody", {}, Object.entries(s.ByErrorCode).map(([code, n]) =>
              el("tr", { "data-code": code }, el("td", { text: code }), el("td", { class: "num", text: String(n) }))),
            s.OtherErrorCodes ? el("tr", {}, el("td", { text: "other codes" }), el("td", { class: "num", text: String(s.OtherErrorCodes) })) : null)) : null,
          (s.FirstFailures || []).length ? keepTableRoles(el("table", { id: "first-failures", class: "cards" }, el("caption", { text: "First failed rows" }),
            el("thead", {}, el("tr", {}, ["Bucket", "Key", "Error code", "HTTP", "Message"].map((h) => el("th", { scope: "col", text: h })))),
            el("tbody", {}, s.FirstFailures.map((r) => el("tr", { "data-key": r.Key },
              el("td", { "data-label": "Bucket", text: r.Bucket }), el("td", { "data-label": "Key", class: "id", text: r.Key }),
              el("td", { "data-label": "Error code", text: r.ErrorCode }), el("td", { "data-label": "HTTP", class: "num", text: String(r.HTTPStatusCode) }),
              el("td", { "data-label": "Message", text: r.ResultMessage })))))) : null));
      }
      const cost = job.CostEstimate;
      if (cost) {
        parts.push(el("h2", { text: "Cost" }), pairs([
          ["Basis", cost.Basis === "Counted" ? "counted (the job has ended)" : "estimate"],
          ["batchops", usd(cost.BatchopsUSD)], ["Amazon S3 Batch Operations", usd(cost.AmazonS3BatchOperationsUSD)],
          ["Prices", (cost.Region || "") + " " + (cost.PriceDate || "")],
        ]));
      }
      const audit = job.Audit || {};
      if (Object.keys(audit).length) {
        parts.push(el("h2", { text: "Who acted" }), pairs(Object.entries(audit).map(([k, v]) => [k, v.By + " via " + v.Via + ", " + when(v.At)])));
      }
      details.replaceChildren(...parts);
      raw.textContent = JSON.stringify(job, null, 2);
    };

    let finalLoads = 0;
    const load = async () => {
      const mine = ++asked;
      const answer = await api("GET", "/jobs/" + encodeURIComponent(id), undefined, ctl.signal);
      if (mine < drawn) return true;
      drawn = mine;
      clearError();
      render(answer.Job);
      // Once ended, one more read picks up what the finalizer records last.
      if (ENDED.has(answer.Job.Status)) finalLoads += 1;
      return finalLoads < 2;
    };
    start(ctl, 2000, load);
  }

  // ---- Routing ------------------------------------------------------------------------

  function route() {
    const hash = location.hash.startsWith("#/") ? location.hash : "#/";
    const [path, query] = hash.slice(1).split("?");
    let id = null;
    if (path.startsWith("/jobs/")) {
      try { id = decodeURIComponent(path.slice("/jobs/".length)); } catch (_) { id = null; }
    }
    if (id) jobView(id);
    else listView(new URLSearchParams(query || ""));
  }
  document.querySelector(".skip").addEventListener("click", (ev) => {
    ev.preventDefault();
    view.focus();
  });
  window.addEventListener("hashchange", route);
  route();
})();
