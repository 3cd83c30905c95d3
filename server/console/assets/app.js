// The dsbx console: plain JavaScript, no build step, no external URL. It
// talks only to the API of the server that serves it, with the token the
// user signs in with (kept in sessionStorage, sent as a Bearer token).
"use strict";
(function () {
  var TOKEN_KEY = "dsbx.token", LANG_KEY = "dsbx.lang";
  var lang = sessionStorage.getItem(LANG_KEY) || ((navigator.language || "").toLowerCase().indexOf("zh") === 0 ? "zh" : "en");
  var me = null;

  // ---- i18n ---------------------------------------------------------------

  function t(key, args) {
    var s = (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
    if (args) {
      s = s.replace(/\{(\w+)\}/g, function (m, k) { return args[k] === undefined ? m : String(args[k]); });
    }
    return s;
  }

  // applyI18n relabels every element carrying data-i18n under root.
  function applyI18n(root) {
    var els = (root || document).querySelectorAll("[data-i18n]");
    for (var i = 0; i < els.length; i++) {
      var e = els[i], args = e.getAttribute("data-i18n-args");
      var text = t(e.getAttribute("data-i18n"), args ? JSON.parse(args) : null);
      var attr = e.getAttribute("data-i18n-attr");
      if (attr) { e.setAttribute(attr, text); } else { e.textContent = text; }
    }
  }

  function setLang(l) {
    lang = l;
    sessionStorage.setItem(LANG_KEY, l);
    document.documentElement.lang = l === "zh" ? "zh-CN" : "en";
    document.getElementById("lang-zh").setAttribute("aria-pressed", String(l === "zh"));
    document.getElementById("lang-en").setAttribute("aria-pressed", String(l === "en"));
    document.title = t("app.title");
    applyI18n(document);
  }

  // ---- DOM helpers --------------------------------------------------------

  // el builds an element. attrs: i18n (label key), args (its parameters),
  // text (literal text, e.g. stored content), on (event handlers), and any
  // other attribute.
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    attrs = attrs || {};
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === undefined || v === null || v === false) return;
      if (k === "i18n") { e.setAttribute("data-i18n", v); e.textContent = t(v, attrs.args); }
      else if (k === "args") { e.setAttribute("data-i18n-args", JSON.stringify(v)); }
      else if (k === "text") { e.textContent = String(v); }
      else if (k === "class") { e.className = v; }
      else if (k === "on") { Object.keys(v).forEach(function (ev) { e.addEventListener(ev, v[ev]); }); }
      else { e.setAttribute(k, v === true ? "" : String(v)); }
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  function clear(id) {
    var e = document.getElementById(id);
    while (e.firstChild) e.removeChild(e.firstChild);
    return e;
  }

  // table builds a table: caption key, column keys, rows of cells (each a
  // string or a node).
  function table(caption, cols, rows, cls) {
    var thead = el("thead", {}, [el("tr", {}, cols.map(function (c) { return el("th", { scope: "col", i18n: c }); }))]);
    var tbody = el("tbody", {}, rows.map(function (r) {
      return el("tr", {}, r.map(function (c) { return c instanceof Node && c.tagName === "TD" ? c : el("td", {}, [c instanceof Node ? c : String(c === undefined || c === null ? "" : c)]); }));
    }));
    return el("table", { class: cls || "data" }, [caption ? el("caption", { i18n: caption }) : null, thead, tbody]);
  }

  function status(key, args, isError) {
    var s = clear("status");
    if (key) s.appendChild(el("p", { i18n: key, args: args, class: isError ? "error" : "" }));
  }

  function fmtTime(s) { return s ? String(s).replace("T", " ").replace(/\.\d+Z$/, "Z") : ""; }

  // ---- API ----------------------------------------------------------------

  function api(path, opts) {
    opts = opts || {};
    var headers = { "Authorization": "Bearer " + (sessionStorage.getItem(TOKEN_KEY) || "") };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method: opts.method || "GET", headers: headers, credentials: "omit", cache: "no-store",
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body)
    }).then(function (resp) {
      if (!resp.ok) {
        return resp.text().then(function (body) {
          var msg = resp.status + " " + resp.statusText;
          try { var j = JSON.parse(body); if (j && j.error) msg = j.error.message || j.error.code; } catch (e) { /* not JSON */ }
          var err = new Error(msg);
          err.status = resp.status;
          if (resp.status === 401 && me) { signOut(); }
          throw err;
        });
      }
      if (opts.withHeaders) return resp.json().then(function (body) { return { body: body, headers: resp.headers }; });
      return opts.text ? resp.text() : resp.json();
    });
  }

  function failed(err) { status("error", { msg: err.message }, true); }

  // ---- sign in ------------------------------------------------------------

  function hasRole(r) { return !!me && me.roles.indexOf(r) >= 0; }
  function isOverseer() { return hasRole("regulator") || hasRole("admin"); }
  function isRequester() { return hasRole("operator") || hasRole("researcher"); }
  // A regulator reads everything and changes nothing: no view offers it an
  // action. Each action is offered only to the roles the API allows.
  function readOnly() { return hasRole("regulator"); }

  function signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    return api("/v1/whoami").then(function (p) {
      me = p;
      var who = document.getElementById("who-text");
      who.setAttribute("data-i18n", "signed.in");
      who.setAttribute("data-i18n-args", JSON.stringify({ name: p.name, roles: p.roles.join(", ") }));
      who.textContent = t("signed.in", { name: p.name, roles: p.roles.join(", ") });
      document.getElementById("who").hidden = false;
      document.getElementById("nav").hidden = false;
      var items = document.querySelectorAll("#nav li[data-role]");
      for (var i = 0; i < items.length; i++) {
        // data-role lists the roles that may see the view; "overseer" is
        // the admin or a regulator.
        items[i].hidden = !items[i].getAttribute("data-role").split(" ").some(function (need) {
          return need === "overseer" ? isOverseer() : hasRole(need);
        });
      }
      show(hasRole("reviewer") ? "reviews" : isOverseer() ? "audit" : hasRole("provider") ? "applications" : isRequester() ? "jobs" : "catalog");
    }, function (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      me = null;
      var e = clear("signin-error");
      e.appendChild(el("span", { i18n: "signin.failed", args: { msg: err.message } }));
      throw err;
    });
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    me = null;
    document.getElementById("who").hidden = true;
    document.getElementById("nav").hidden = true;
    ["catalog-list", "catalog-fields", "reviews-list", "review-detail", "audit-list", "timeline", "alerts-list",
      "apps-list", "app-detail", "objections-list", "objection-detail", "jobs-list", "job-detail", "dash-jobs", "dash-denials", "dash-budgets", "status"].forEach(clear);
    document.getElementById("token").value = "";
    show("signin");
  }

  // ---- views --------------------------------------------------------------

  var loaders = {};

  function show(view) {
    var views = document.querySelectorAll(".view");
    for (var i = 0; i < views.length; i++) views[i].hidden = views[i].id !== "view-" + view;
    var btns = document.querySelectorAll("#nav button[data-view]");
    for (var j = 0; j < btns.length; j++) {
      if (btns[j].getAttribute("data-view") === view) btns[j].setAttribute("aria-current", "page");
      else btns[j].removeAttribute("aria-current");
    }
    document.body.setAttribute("data-view", view);
    status(null);
    if (loaders[view]) loaders[view]();
  }

  // Catalog: every dataset, and one's fields.
  loaders.catalog = function () {
    clear("catalog-fields");
    return api("/v1/datasets").then(function (list) {
      var box = clear("catalog-list");
      if (!list.length) { box.appendChild(el("p", { i18n: "none" })); return; }
      box.appendChild(table("catalog.caption", ["col.name", "col.title", "col.agency", "col.grade", "col.open", "col.status", "col.versions", "col.actions"],
        list.map(function (d) {
          return [d.name, d.title || "", d.agency || "", d.grade, d.open, d.status, String((d.versions || []).length),
            el("button", { type: "button", class: "small", i18n: "show.fields", "data-dataset": d.name, on: { click: function () { showFields(d); } } })];
        })));
    }).catch(failed);
  };

  function showFields(d) {
    var box = clear("catalog-fields");
    box.appendChild(el("h3", { i18n: "catalog.fields", args: { name: d.name }, tabindex: "-1", id: "fields-heading" }));
    box.appendChild(table(null, ["col.name", "col.type", "col.sensitivity", "col.identifier", "col.description"],
      (d.fields || []).map(function (f) { return [f.name, f.type || "", f.sensitivity || "", f.identifier || "", f.description || ""]; })));
    box.appendChild(el("h4", { i18n: "catalog.versions", args: { name: d.name } }));
    var versions = d.versions || [];
    if (!versions.length) box.appendChild(el("p", { i18n: "none" }));
    else box.appendChild(table(null, ["col.version", "col.rows", "col.status", "col.created"], versions.map(function (v) {
      return [el("code", { text: v.id }), String(v.rows), v.status + (v.status_reason ? " (" + v.status_reason + ")" : ""), fmtTime(v.created_at)];
    }), "data versions"));
    box.appendChild(el("h4", { i18n: "catalog.objections", args: { name: d.name } }));
    var obj = el("div", { id: "catalog-objections" }, [el("p", { i18n: "loading" })]);
    box.appendChild(obj);
    document.getElementById("fields-heading").focus();
    return api("/v1/objections?dataset=" + encodeURIComponent(d.name)).then(function (list) {
      while (obj.firstChild) obj.removeChild(obj.firstChild);
      if (!list.length) { obj.appendChild(el("p", { i18n: "obj.empty" })); return; }
      obj.appendChild(objectionTable(list, false));
    }).catch(function (err) {
      while (obj.firstChild) obj.removeChild(obj.firstChild);
      obj.appendChild(el("p", { class: "error", i18n: "error", args: { msg: err.message } }));
    });
  }

  // Review queue: held results, their checks, remedies and candidate file.
  loaders.reviews = function () {
    clear("review-detail");
    return loadQueue();
  };

  function loadQueue() {
    return api("/v1/reviews").then(function (list) {
      var box = clear("reviews-list");
      if (!list.length) { box.appendChild(el("p", { i18n: "reviews.empty", id: "reviews-empty" })); return; }
      box.appendChild(table("reviews.caption", ["col.job", "col.operator", "col.dataset", "col.purpose", "col.submitted", "col.required", "col.actions"],
        list.map(function (j) {
          return [String(j.id), j.operator, j.dataset, j.purpose, fmtTime(j.created_at), String(j.review ? j.review.required : ""),
            el("button", { type: "button", class: "small", i18n: "open", "data-job": j.id, "aria-label": "job " + j.id, on: { click: function () { openReview(j.id); } } })];
        })));
    }).catch(failed);
  }

  // parseCSV reads RFC 4180 CSV into rows of strings.
  function parseCSV(text) {
    var rows = [], row = [], field = "", i = 0, q = false;
    while (i < text.length) {
      var c = text[i];
      if (q) {
        if (c === '"') { if (text[i + 1] === '"') { field += '"'; i++; } else { q = false; } }
        else field += c;
      } else if (c === '"') q = true;
      else if (c === ",") { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(field); rows.push(row); row = []; field = "";
      } else field += c;
      i++;
    }
    if (field !== "" || row.length) { row.push(field); rows.push(row); }
    return rows;
  }

  function openReview(id) {
    var box = clear("review-detail");
    box.appendChild(el("p", { i18n: "loading" }));
    return Promise.all([api("/v1/jobs/" + id), api("/v1/jobs/" + id + "/candidate?format=csv", { text: true })]).then(function (r) {
      renderReview(r[0], parseCSV(r[1]));
    }).catch(function (err) { clear("review-detail"); failed(err); });
  }

  function renderReview(j, csv) {
    var box = clear("review-detail");
    var art = el("article", { class: "job", id: "review-job", "data-job": j.id });
    art.appendChild(el("h3", { i18n: "review.job", args: { id: j.id }, tabindex: "-1", id: "review-job-heading" }));
    art.appendChild(el("dl", { class: "facts" }, [
      el("dt", { i18n: "col.operator" }), el("dd", { text: j.operator }),
      el("dt", { i18n: "col.dataset" }), el("dd", { text: j.dataset + (j.version ? " @ " + j.version.slice(0, 12) : "") }),
      el("dt", { i18n: "col.purpose" }), el("dd", { text: j.purpose }),
      el("dt", { i18n: "col.status" }), el("dd", { text: j.state, id: "review-state" }),
      el("dt", { i18n: "col.required" }), el("dd", { text: j.review ? String(j.review.required) : "" })
    ]));
    if (j.sql) { art.appendChild(el("h4", { i18n: "review.sql" })); art.appendChild(el("pre", { class: "sql", text: j.sql })); }
    if (j.review && j.review.justification) {
      art.appendChild(el("h4", { i18n: "review.justification" }));
      art.appendChild(el("blockquote", { text: j.review.justification }));
    }

    art.appendChild(el("h4", { i18n: "review.checks" }));
    art.appendChild(table(null, ["col.check", "col.verdict", "col.detail", "col.cells"], (j.checks || []).map(function (c) {
      var cells = el("ul", { class: "cells" }, (c.cells || []).map(function (x) {
        return el("li", { text: "#" + x.row + (x.column ? " " + x.column : "") + ": " + x.reason });
      }));
      return [c.check, el("td", {}, [el("span", { class: "verdict v-" + c.verdict, text: c.verdict })]), c.detail, cells];
    }), "data checks"));

    art.appendChild(el("h4", { i18n: "review.remedies" }));
    var remedies = j.remedies || [];
    if (!remedies.length) art.appendChild(el("p", { i18n: "review.noremedies" }));
    else art.appendChild(table(null, ["col.row", "col.column", "col.action", "col.reason"], remedies.map(function (m) {
      return [String(m.row), m.column, m.action, m.reason];
    }), "data remedies"));

    // The candidate file, with every changed cell marked.
    var header = csv[0] || [], body = csv.slice(1);
    var marks = {};
    remedies.forEach(function (m) { marks[m.row + "\u0000" + m.column] = m; });
    var thead = el("thead", {}, [el("tr", {}, [el("th", { scope: "col", i18n: "col.row" })].concat(header.map(function (h) { return el("th", { scope: "col", text: h }); })))]);
    var tbody = el("tbody", {}, body.map(function (r, i) {
      return el("tr", {}, [el("th", { scope: "row", text: String(i) })].concat(header.map(function (h, c) {
        var m = marks[i + "\u0000" + h];
        if (m && m.action === "suppressed") {
          return el("td", { class: "suppressed", title: m.reason, "data-row": i, "data-column": h }, [
            el("span", { class: "mark", "aria-hidden": "true", text: "■" }),
            el("span", { class: "sr-only", i18n: "cell.suppressed" }), document.createTextNode(r[c] || "")]);
        }
        return el("td", { class: m ? "coded" : "", title: m ? m.reason : null, "data-row": i, "data-column": h, text: r[c] === undefined ? "" : r[c] });
      })));
    }));
    art.appendChild(el("table", { class: "data candidate", id: "candidate" }, [el("caption", { i18n: "review.candidate" }), thead, tbody]));
    art.appendChild(el("div", { class: "legend", role: "note" }, [
      el("strong", { i18n: "review.legend" }), " ",
      el("span", { class: "swatch suppressed", "aria-hidden": "true" }), el("span", { i18n: "legend.suppressed" }), " ",
      el("span", { class: "swatch coded", "aria-hidden": "true" }), el("span", { i18n: "legend.rounded" })
    ]));

    // The decision.
    if (j.state === "held") {
      var form = el("form", { id: "review-form", class: "decision" }, [
        el("fieldset", {}, [
          el("legend", { i18n: "review.decision" }),
          el("label", { for: "review-reason", i18n: "review.reason" }),
          el("textarea", { id: "review-reason", name: "reason", rows: "3", required: true }),
          el("div", { class: "actions" }, [
            el("button", { type: "submit", id: "approve", value: "approve", class: "approve", i18n: "review.approve" }),
            el("button", { type: "submit", id: "reject", value: "reject", class: "reject", i18n: "review.reject" })
          ])
        ])
      ]);
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var approve = !!(ev.submitter && ev.submitter.value === "approve");
        var reason = document.getElementById("review-reason").value.trim();
        if (!reason) { status("review.needreason", null, true); return; }
        var buttons = form.querySelectorAll("button");
        for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
        api("/v1/jobs/" + j.id + "/review", { method: "POST", body: { approve: approve, reason: reason } }).then(function (after) {
          document.getElementById("review-state").textContent = after.state;
          form.replaceWith(el("p", { id: "review-result", class: "result state-" + after.state, role: "status", i18n: "review.done", args: { state: after.state } }));
          loadQueue();
        }).catch(function (err) {
          for (var i = 0; i < buttons.length; i++) buttons[i].disabled = false;
          failed(err);
        });
      });
      art.appendChild(form);
    }
    box.appendChild(art);
    document.getElementById("review-job-heading").focus();
  }

  function facts(pairs) {
    var dl = el("dl", { class: "facts" });
    pairs.forEach(function (p) {
      if (p === null) return;
      dl.appendChild(el("dt", { i18n: p[0] }));
      dl.appendChild(p[1] instanceof Node ? el("dd", {}, [p[1]]) : el("dd", { text: p[1] === undefined || p[1] === null ? "" : String(p[1]), id: p[2] || null }));
    });
    return dl;
  }

  // termDay is the day (China Standard Time) a term starts on, or, for its
  // end (an exclusive instant, the next midnight), the last day it covers.
  // A plain day is shown as given.
  function termDay(s, end) {
    if (!s) return "";
    if (/^\d{4}-\d{2}-\d{2}$/.test(s)) return s;
    var ms = Date.parse(s);
    if (isNaN(ms)) return String(s);
    return new Date(ms - (end ? 1 : 0) + 8 * 3600 * 1000).toISOString().slice(0, 10);
  }

  // Applications (providers answer; the admin and regulators read).
  loaders.applications = function () { clear("app-detail"); return loadApplications(); };

  function loadApplications() {
    var form = document.getElementById("apps-filter");
    var q = new URLSearchParams();
    if (form.elements.status.value) q.set("status", form.elements.status.value);
    if (form.elements.overdue.checked) q.set("overdue", "true");
    return api("/v1/applications?" + q.toString()).then(function (list) {
      var box = clear("apps-list");
      if (!list.length) { box.appendChild(el("p", { i18n: "apps.empty", id: "apps-empty" })); return; }
      box.appendChild(table("apps.caption", ["col.id", "col.applicant", "col.datasets", "col.purpose", "col.submitted", "col.due", "col.status", "col.actions"],
        list.map(function (a) {
          var due = el("td", { class: a.overdue ? "overdue" : "" }, [fmtTime(a.due_at)]);
          if (a.overdue) due.appendChild(el("span", { class: "verdict v-fail", i18n: "apps.overdue" }));
          return [String(a.id), a.applicant, (a.datasets || []).map(function (d) { return d.dataset; }).join(", "), a.purpose, fmtTime(a.submitted_at), due, a.status,
            el("button", { type: "button", class: "small", i18n: "open", "data-app": a.id, "aria-label": "application " + a.id, on: { click: function () { openApplication(a.id); } } })];
        }), "data applications"));
    }).catch(failed);
  }

  var FORMS = ["raw", "masked", "hashed", "generalised"];

  function openApplication(id) {
    return api("/v1/applications/" + id).then(renderApplication).catch(failed);
  }

  function renderApplication(a) {
    var box = clear("app-detail");
    var art = el("article", { id: "app", "data-app": a.id });
    art.appendChild(el("h3", { i18n: "apps.one", args: { id: a.id }, tabindex: "-1", id: "app-heading" }));
    art.appendChild(facts([
      ["col.applicant", a.applicant], ["col.kind", a.kind], ["col.purpose", a.purpose], ["apps.scenario", a.scenario || ""],
      ["apps.term", t("apps.termdays", { from: a.valid_from ? termDay(a.valid_from, false) : t("apps.onapproval"), until: termDay(a.valid_until, true) })], ["apps.outputs", a.outputs || ""],
      ["col.submitted", fmtTime(a.submitted_at)], ["col.due", fmtTime(a.due_at) + (a.overdue ? " (" + t("apps.overdue") + ")" : "")],
      ["col.status", a.status, "app-status"],
      a.decided_by ? ["apps.decidedby", a.decided_by + " " + fmtTime(a.decided_at)] : null,
      a.reason ? ["col.reason", a.reason] : null,
      a.agreement_id ? ["apps.agreement", String(a.agreement_id)] : null
    ]));
    var canDecide = a.status === "pending" && hasRole("provider") && !readOnly();
    // What is asked, and, for the provider, the form to grant each field in.
    var rows = [];
    (a.datasets || []).forEach(function (d) {
      (d.fields || []).forEach(function (f) {
        var cell = f;
        if (canDecide) {
          var sel = el("select", { class: "form-select", "data-dataset": d.dataset, "data-field": f, "aria-label": d.dataset + "." + f,
            id: "form-" + d.dataset + "-" + f }, [el("option", { value: "none", i18n: "form.none" })].concat(FORMS.map(function (m) {
            return el("option", { value: m, i18n: "form." + m });
          })));
          sel.value = "raw";
          cell = sel;
        }
        rows.push([d.dataset + (d.version ? "@" + d.version : ""), f, cell]);
      });
    });
    art.appendChild(table("apps.asked", ["col.dataset", "col.field", canDecide ? "col.form" : "col.actions"].slice(0, canDecide ? 3 : 2),
      rows.map(function (r) { return canDecide ? r : r.slice(0, 2); }), "data asked"));
    if (canDecide) {
      var form = el("form", { id: "approve-form", class: "decision" }, [
        el("fieldset", {}, [
          el("legend", { i18n: "apps.approve.legend" }),
          el("p", { i18n: "apps.approve.help" }),
          el("label", { for: "ap-until", i18n: "apps.until" }),
          el("input", { id: "ap-until", name: "valid_until", type: "date", max: termDay(a.valid_until, true) }),
          el("label", { for: "ap-aggregates" }, [el("input", { id: "ap-aggregates", name: "aggregates_only", type: "checkbox" }), " ", el("span", { i18n: "apps.aggregates" })]),
          el("label", { for: "ap-mincell", i18n: "apps.mincell" }),
          el("input", { id: "ap-mincell", name: "min_cell_count", type: "number", min: "0", step: "1" }),
          el("label", { for: "ap-note", i18n: "apps.note" }),
          el("textarea", { id: "ap-note", name: "note", rows: "2" }),
          el("div", { class: "actions" }, [el("button", { type: "submit", id: "app-approve", class: "approve", i18n: "apps.approve" })])
        ])
      ]);
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var fields = {};
        var sels = art.querySelectorAll("select.form-select");
        for (var i = 0; i < sels.length; i++) {
          var ds = sels[i].getAttribute("data-dataset");
          if (!fields[ds]) fields[ds] = {};
          if (FORMS.indexOf(sels[i].value) >= 0) fields[ds][sels[i].getAttribute("data-field")] = sels[i].value;
        }
        Object.keys(fields).forEach(function (k) { if (!Object.keys(fields[k]).length) delete fields[k]; });
        var body = { fields: fields, outputs: { aggregates_only: document.getElementById("ap-aggregates").checked } };
        var mc = document.getElementById("ap-mincell").value.trim();
        if (mc) body.outputs.min_cell_count = parseInt(mc, 10);
        var until = document.getElementById("ap-until").value;
        if (until) body.valid_until = until;
        var note = document.getElementById("ap-note").value.trim();
        if (note) body.note = note;
        decide("/v1/applications/" + a.id + "/approve", body, art, function (r) {
          return el("p", { id: "app-result", class: "result state-released", role: "status", i18n: "apps.approved", args: { id: r.agreement.id } });
        });
      });
      art.appendChild(form);
      var refuse = el("form", { id: "refuse-form", class: "decision" }, [
        el("fieldset", {}, [
          el("legend", { i18n: "apps.refuse.legend" }),
          el("label", { for: "refuse-reason", i18n: "review.reason" }),
          el("textarea", { id: "refuse-reason", name: "reason", rows: "2", required: true }),
          el("div", { class: "actions" }, [el("button", { type: "submit", id: "app-refuse", class: "reject", i18n: "apps.refuse" })])
        ])
      ]);
      refuse.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var reason = document.getElementById("refuse-reason").value.trim();
        if (!reason) { status("review.needreason", null, true); return; }
        decide("/v1/applications/" + a.id + "/refuse", { reason: reason }, art, function () {
          return el("p", { id: "app-result", class: "result state-rejected", role: "status", i18n: "apps.refused" });
        });
      });
      art.appendChild(refuse);
    }
    box.appendChild(art);
    document.getElementById("app-heading").focus();
  }

  // decide posts an answer from the forms inside art, replaces them with
  // done(answer) and reloads the list.
  function decide(path, body, art, done) {
    var buttons = art.querySelectorAll("form button");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
    return api(path, { method: "POST", body: body }).then(function (r) {
      var forms = art.querySelectorAll("form");
      var msg = done(r);
      for (var k = 0; k < forms.length; k++) forms[k].remove();
      art.appendChild(msg);
      var st = art.querySelector("#app-status, #objection-status");
      if (st) st.textContent = (r.application || r.objection || {}).status || st.textContent;
      if (path.indexOf("/v1/applications/") === 0) loadApplications(); else loadObjections();
    }).catch(function (err) {
      for (var i = 0; i < buttons.length; i++) buttons[i].disabled = false;
      failed(err);
    });
  }

  // Objections (the provider or the admin decides; regulators read).
  loaders.objections = function () { clear("objection-detail"); return loadObjections(); };

  function objectionTable(list, actions) {
    var cols = ["col.id", "col.dataset", "col.field", "col.reason", "col.filer", "col.submitted", "col.status", "obj.decision"];
    if (actions) cols.push("col.actions");
    return table(actions ? "obj.caption" : null, cols, list.map(function (o) {
      var r = [String(o.id), o.dataset, o.field || "", o.reason, o.filer, fmtTime(o.filed_at), o.status,
        o.decision ? o.decision + (o.decider ? " (" + o.decider + ")" : "") : ""];
      if (actions) r.push(el("button", { type: "button", class: "small", i18n: "open", "data-objection": o.id, "aria-label": "objection " + o.id, on: { click: function () { renderObjection(o); } } }));
      return r;
    }), "data objections");
  }

  function loadObjections() {
    return api("/v1/objections").then(function (list) {
      var box = clear("objections-list");
      if (!list.length) { box.appendChild(el("p", { i18n: "obj.empty", id: "objections-empty" })); return; }
      box.appendChild(objectionTable(list, true));
    }).catch(failed);
  }

  function renderObjection(o) {
    var box = clear("objection-detail");
    var art = el("article", { id: "objection", "data-objection": o.id });
    art.appendChild(el("h3", { i18n: "obj.one", args: { id: o.id }, tabindex: "-1", id: "objection-heading" }));
    art.appendChild(facts([
      ["col.dataset", o.dataset], ["col.field", o.field || t("obj.whole")], ["col.reason", o.reason], ["col.filer", o.filer],
      ["col.submitted", fmtTime(o.filed_at)], ["col.status", o.status, "objection-status"],
      o.decision ? ["obj.decision", o.decision + (o.decider ? " (" + o.decider + ", " + fmtTime(o.decided_at) + ")" : "")] : null
    ]));
    if (o.status === "open" && (hasRole("provider") || hasRole("admin")) && !readOnly()) {
      var form = el("form", { id: "objection-form", class: "decision" }, [
        el("fieldset", {}, [
          el("legend", { i18n: "obj.decide" }),
          el("p", { i18n: "obj.help" }),
          el("label", { for: "objection-reason", i18n: "review.reason" }),
          el("textarea", { id: "objection-reason", name: "reason", rows: "3", required: true }),
          el("div", { class: "actions" }, [
            el("button", { type: "submit", id: "uphold", value: "uphold", class: "reject", i18n: "obj.uphold" }),
            el("button", { type: "submit", id: "dismiss", value: "dismiss", i18n: "obj.dismiss" })
          ])
        ])
      ]);
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var uphold = !!(ev.submitter && ev.submitter.value === "uphold");
        var reason = document.getElementById("objection-reason").value.trim();
        if (!reason) { status("review.needreason", null, true); return; }
        decide("/v1/objections/" + o.id + "/decision", { uphold: uphold, reason: reason }, art, function (r) {
          return el("p", { id: "objection-result", class: "result", role: "status", i18n: "obj.done",
            args: { status: r.objection.status, stopped: (r.stopped_jobs || []).length, released: (r.released_jobs || []).length } });
        });
      });
      art.appendChild(form);
    }
    box.appendChild(art);
    document.getElementById("objection-heading").focus();
  }

  // Jobs: a requester's own (the server returns only those), or every job
  // for the admin and regulators.
  loaders.jobs = function () {
    clear("job-detail");
    var h = document.getElementById("jobs-heading");
    h.setAttribute("data-i18n", isRequester() ? "jobs.mine" : "jobs.title");
    h.textContent = t(h.getAttribute("data-i18n"));
    return loadJobs();
  };

  function loadJobs() {
    return api("/v1/jobs").then(function (list) {
      var box = clear("jobs-list");
      if (!list.length) { box.appendChild(el("p", { i18n: "jobs.empty", id: "jobs-empty" })); return; }
      list.sort(function (a, b) { return b.id - a.id; });
      box.appendChild(table("jobs.caption", ["col.job", "col.operator", "col.dataset", "col.purpose", "col.state", "col.submitted", "col.actions"],
        list.map(function (j) {
          return [String(j.id), j.operator, j.dataset, j.purpose, el("td", {}, [el("span", { class: "state s-" + j.state, text: j.state })]), fmtTime(j.created_at),
            el("button", { type: "button", class: "small", i18n: "open", "data-job": j.id, "aria-label": "job " + j.id, on: { click: function () { openJob(j.id); } } })];
        }), "data jobs"));
    }).catch(failed);
  }

  function openJob(id) {
    return api("/v1/jobs/" + id).then(renderJob).catch(failed);
  }

  function renderJob(j) {
    var box = clear("job-detail");
    var art = el("article", { class: "job", id: "job", "data-job": j.id });
    art.appendChild(el("h3", { i18n: "review.job", args: { id: j.id }, tabindex: "-1", id: "job-heading" }));
    art.appendChild(facts([
      ["col.operator", j.operator], ["col.dataset", j.dataset + (j.version ? " @ " + j.version.slice(0, 12) : "")],
      ["col.purpose", j.purpose, "job-purpose"], ["col.state", j.state, "job-state"],
      ["col.submitted", fmtTime(j.created_at)], ["jobs.updated", fmtTime(j.updated_at)],
      j.agreement_id ? ["apps.agreement", String(j.agreement_id)] : null,
      j.error ? ["jobs.error", j.error] : null
    ]));
    if (j.sql) { art.appendChild(el("h4", { i18n: "review.sql" })); art.appendChild(el("pre", { class: "sql", id: "job-sql", text: j.sql })); }
    var reasons = (j.decision && j.decision.reasons) || [];
    if (reasons.length) {
      art.appendChild(el("h4", { i18n: "jobs.reasons" }));
      art.appendChild(table(null, ["col.code", "col.message"], reasons.map(function (r) { return [r.code, r.message + (r.field ? " (" + r.field + ")" : "")]; }), "data reasons"));
    }
    var checks = j.checks || [];
    art.appendChild(el("h4", { i18n: "review.checks" }));
    if (!checks.length) art.appendChild(el("p", { i18n: "none" }));
    else art.appendChild(table(null, ["col.check", "col.verdict", "col.detail"], checks.map(function (c) {
      return [c.check, el("td", {}, [el("span", { class: "verdict v-" + c.verdict, text: c.verdict })]), c.detail];
    }), "data checks"));
    var remedies = j.remedies || [];
    art.appendChild(el("h4", { i18n: "review.remedies" }));
    if (!remedies.length) art.appendChild(el("p", { i18n: "review.noremedies" }));
    else art.appendChild(table(null, ["col.row", "col.column", "col.action", "col.reason"], remedies.map(function (m) {
      return [String(m.row), m.column, m.action, m.reason];
    }), "data remedies"));
    if (j.review) {
      art.appendChild(el("h4", { i18n: "jobs.review" }));
      art.appendChild(facts([["col.required", String(j.review.required)]]));
      if (j.review.justification) {
        art.appendChild(el("h4", { i18n: "review.justification" }));
        art.appendChild(el("blockquote", { id: "job-justification", text: j.review.justification }));
      }
      var ds = j.review.decisions || [];
      if (ds.length) art.appendChild(table(null, ["col.reviewer", "col.verdict", "col.reason", "col.time"], ds.map(function (d) {
        return [d.reviewer, t(d.approve ? "review.approve" : "review.reject"), d.reason, fmtTime(d.at)];
      }), "data decisions"));
    }
    var own = me && j.operator === me.name && isRequester();
    if (own && j.state === "held") {
      var form = el("form", { id: "justify-form", class: "decision" }, [
        el("fieldset", {}, [
          el("legend", { i18n: "jobs.justify" }),
          el("p", { i18n: "jobs.justify.help" }),
          el("label", { for: "justification", i18n: "jobs.justification" }),
          el("textarea", { id: "justification", name: "justification", rows: "3", required: true }),
          el("div", { class: "actions" }, [el("button", { type: "submit", id: "justify", i18n: "jobs.send" })])
        ])
      ]);
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var text = document.getElementById("justification").value.trim();
        if (!text) return;
        var b = document.getElementById("justify");
        b.disabled = true;
        api("/v1/jobs/" + j.id + "/justification", { method: "POST", body: { justification: text } }).then(function (after) {
          renderJob(after);
          var done = el("p", { id: "justify-result", class: "result", role: "status", i18n: "jobs.justified" });
          document.getElementById("job").appendChild(done);
        }).catch(function (err) { b.disabled = false; failed(err); });
      });
      art.appendChild(form);
    }
    if (own && j.state === "released") {
      var preview = el("div", { id: "job-preview" });
      art.appendChild(el("button", { type: "button", id: "fetch-result", i18n: "jobs.fetch", on: { click: function (ev) {
        ev.currentTarget.disabled = true;
        api("/v1/jobs/" + j.id + "/result?format=csv", { text: true }).then(function (text) {
          var rows = parseCSV(text), header = rows[0] || [], body = rows.slice(1, 21);
          while (preview.firstChild) preview.removeChild(preview.firstChild);
          preview.appendChild(el("table", { class: "data", id: "result-table" }, [
            el("caption", { i18n: "jobs.preview", args: { n: body.length, total: Math.max(rows.length - 1, 0) } }),
            el("thead", {}, [el("tr", {}, header.map(function (h) { return el("th", { scope: "col", text: h }); }))]),
            el("tbody", {}, body.map(function (r) { return el("tr", {}, header.map(function (h, c) { return el("td", { text: r[c] === undefined ? "" : r[c] }); })); }))
          ]));
        }).catch(failed);
      } } }));
      art.appendChild(preview);
    }
    box.appendChild(art);
    document.getElementById("job-heading").focus();
  }

  // ---- dashboard (regulators and the admin) -------------------------------

  // The SVG namespace name (an identifier, never fetched), joined so that
  // no asset spells out a URL.
  var SVG = ["http", "//www.w3.org/2000/svg"].join(":");
  function svg(tag, attrs, children) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = String(attrs[k]);
      else if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, String(attrs[k]));
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }

  var OUTCOMES = ["denied", "held", "released", "rejected", "failed"];
  var chartSeq = 0;

  // auditAll follows the X-Audit-Next cursor until the filter is exhausted.
  function auditAll(query, acc) {
    acc = acc || [];
    return api("/v1/audit/events?" + query + "&limit=1000", { withHeaders: true }).then(function (r) {
      acc = acc.concat(r.body);
      var next = r.headers.get("X-Audit-Next");
      if (next && r.body.length === 1000) return auditAll(query.replace(/&after=\d+$/, "") + "&after=" + next, acc);
      return acc;
    });
  }

  // cstDay is the day of a time in China Standard Time.
  function cstDay(s) { return new Date(Date.parse(s) + 8 * 3600 * 1000).toISOString().slice(0, 10); }

  function outcomeOf(e) {
    switch (e.kind) {
      case "job.decided": return e.data && e.data.state === "denied" ? "denied" : null;
      case "job.held": return "held";
      case "result.released": return "released";
      case "job.rejected": return "rejected";
      case "job.failed": return "failed";
    }
    return null;
  }

  // chart wraps an SVG drawing with its accessible title and description,
  // a visible legend and a table of the same numbers.
  function chart(box, id, titleKey, descKey, descArgs, width, height, draw, tbl) {
    var n = ++chartSeq;
    box.appendChild(el("h3", { i18n: titleKey, id: id + "-title" }));
    var s = svg("svg", { id: id, class: "chart", width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img",
      "aria-labelledby": "svgt" + n + " svgd" + n, focusable: "false" });
    s.appendChild(svg("title", { id: "svgt" + n, text: t(titleKey) }));
    s.appendChild(svg("desc", { id: "svgd" + n, text: t(descKey, descArgs) }));
    draw(s);
    box.appendChild(el("figure", { class: "chart" }, [s]));
    var det = el("details", { class: "fallback" }, [el("summary", { i18n: "dash.table" }), tbl]);
    det.open = true;
    box.appendChild(det);
  }

  loaders.dashboard = function () {
    ["dash-jobs", "dash-denials", "dash-budgets"].forEach(function (b) { clear(b).appendChild(el("p", { i18n: "loading" })); });
    var events = Promise.all([auditAll("kind=job."), auditAll("kind=result.released")]).then(function (r) {
      var all = r[0].concat(r[1]);
      drawJobs(all);
      drawDenials(r[0]);
    });
    var budgets = api("/v1/privacy/budgets").then(drawBudgets);
    return Promise.all([events, budgets]).catch(failed);
  };

  function drawJobs(entries) {
    var box = clear("dash-jobs");
    var days = {}, max = 0;
    entries.forEach(function (e) {
      var o = outcomeOf(e);
      if (!o) return;
      var d = cstDay(e.time);
      days[d] = days[d] || { denied: 0, held: 0, released: 0, rejected: 0, failed: 0 };
      days[d][o]++;
    });
    var list = Object.keys(days).sort();
    list.forEach(function (d) { var tot = 0; OUTCOMES.forEach(function (o) { tot += days[d][o]; }); max = Math.max(max, tot); });
    var barW = 48, gap = 24, left = 44, top = 12, plotH = 200, W = Math.max(360, left + list.length * (barW + gap) + gap), H = top + plotH + 40;
    var tbl = table("dash.jobs.table", ["col.day"].concat(OUTCOMES.map(function (o) { return "dec." + o; })),
      list.map(function (d) { return [d].concat(OUTCOMES.map(function (o) { return String(days[d][o]); })); }), "data dash-jobs-table");
    chart(box, "chart-jobs", "dash.jobs", "dash.jobs.desc", { days: list.length }, W, H, function (s) {
      s.appendChild(svg("line", { class: "axis", x1: left, y1: top + plotH, x2: W - 4, y2: top + plotH }));
      s.appendChild(svg("text", { class: "tick", x: left - 6, y: top + 10, "text-anchor": "end", text: String(max) }));
      s.appendChild(svg("text", { class: "tick", x: left - 6, y: top + plotH, "text-anchor": "end", text: "0" }));
      list.forEach(function (d, i) {
        var x = left + gap + i * (barW + gap), y = top + plotH;
        var g = svg("g", { class: "bar", "data-day": d });
        OUTCOMES.forEach(function (o) {
          var c = days[d][o];
          if (!c) return;
          var h = max ? c / max * plotH : 0;
          y -= h;
          g.appendChild(svg("rect", { class: "seg o-" + o, x: x, y: y, width: barW, height: h, "data-outcome": o, "data-count": c }, [
            svg("title", { text: d + " " + t("dec." + o) + ": " + c })]));
        });
        g.appendChild(svg("text", { class: "tick", x: x + barW / 2, y: top + plotH + 16, "text-anchor": "middle", text: d.slice(5) }));
        s.appendChild(g);
      });
    }, tbl);
    box.appendChild(legend(OUTCOMES.map(function (o) { return ["o-" + o, "dec." + o]; })));
  }

  function legend(items) {
    return el("div", { class: "legend", role: "note" }, items.map(function (it) {
      return el("span", { class: "key" }, [el("span", { class: "swatch " + it[0], "aria-hidden": "true" }), el("span", { i18n: it[1] })]);
    }));
  }

  function drawDenials(entries) {
    var box = clear("dash-denials");
    var codes = {};
    entries.forEach(function (e) {
      if (e.kind !== "job.decided" || !e.data || e.data.state !== "denied") return;
      var seen = {};
      ((e.data.decision && e.data.decision.reasons) || []).forEach(function (r) {
        if (seen[r.code]) return; // one job counts once per code
        seen[r.code] = true;
        codes[r.code] = (codes[r.code] || 0) + 1;
      });
    });
    var list = Object.keys(codes).sort(function (a, b) { return codes[b] - codes[a] || (a < b ? -1 : 1); });
    var max = 0;
    list.forEach(function (c) { max = Math.max(max, codes[c]); });
    var left = 200, rowH = 26, W = 640, H = Math.max(40, 10 + list.length * rowH), plotW = W - left - 50;
    var tbl = table("dash.denials.table", ["col.code", "col.count"], list.map(function (c) { return [c, String(codes[c])]; }), "data dash-denials-table");
    chart(box, "chart-denials", "dash.denials", "dash.denials.desc", { n: list.length }, W, H, function (s) {
      if (!list.length) s.appendChild(svg("text", { class: "tick", x: 10, y: 24, text: t("none") }));
      list.forEach(function (c, i) {
        var y = 6 + i * rowH, w = max ? codes[c] / max * plotW : 0;
        s.appendChild(svg("text", { class: "label", x: left - 8, y: y + 15, "text-anchor": "end", text: c }));
        s.appendChild(svg("rect", { class: "hbar", x: left, y: y, width: w, height: rowH - 8, "data-code": c, "data-count": codes[c] }, [
          svg("title", { text: c + ": " + codes[c] })]));
        s.appendChild(svg("text", { class: "tick", x: left + w + 6, y: y + 15, text: String(codes[c]) }));
      });
    }, tbl);
  }

  function drawBudgets(list) {
    var box = clear("dash-budgets");
    var left = 220, rowH = 30, W = 640, H = Math.max(40, 10 + list.length * rowH), plotW = W - left - 110;
    var tbl = table("dash.budgets.table", ["col.operator", "col.dataset", "col.agreement", "dash.spent", "dash.total", "dash.remaining"], list.map(function (b) {
      return [b.operator, b.dataset, String(b.agreement_id), String(b.spent ? b.spent.epsilon : 0), String(b.epsilon), String(b.remaining ? b.remaining.epsilon : "")];
    }), "data dash-budgets-table");
    chart(box, "chart-budgets", "dash.budgets", "dash.budgets.desc", { n: list.length }, W, H, function (s) {
      if (!list.length) s.appendChild(svg("text", { class: "tick", x: 10, y: 24, text: t("none") }));
      list.forEach(function (b, i) {
        var y = 6 + i * rowH, spent = b.spent ? b.spent.epsilon : 0, frac = b.epsilon ? Math.min(1, spent / b.epsilon) : 0;
        var label = b.operator + " · " + b.dataset + " #" + b.agreement_id;
        s.appendChild(svg("text", { class: "label", x: left - 8, y: y + 16, "text-anchor": "end", text: label }));
        s.appendChild(svg("rect", { class: "budget-total", x: left, y: y, width: plotW, height: rowH - 10 }, [svg("title", { text: label + " ε " + b.epsilon })]));
        s.appendChild(svg("rect", { class: "budget-spent", x: left, y: y, width: plotW * frac, height: rowH - 10, "data-spent": spent, "data-total": b.epsilon }, [
          svg("title", { text: label + ": ε " + spent + " / " + b.epsilon })]));
        s.appendChild(svg("text", { class: "tick", x: left + plotW + 6, y: y + 16, text: "ε " + spent + " / " + b.epsilon }));
      });
    }, tbl);
    box.appendChild(legend([["budget-spent", "dash.spent"], ["budget-total", "dash.total"]]));
  }

  // Audit log (regulators and the admin): filtered entries and timelines.
  loaders.audit = function () { return queryAudit(); };

  function queryAudit() {
    var form = document.getElementById("audit-filter");
    var q = new URLSearchParams();
    ["operator", "dataset", "kind", "decision", "from", "to"].forEach(function (n) {
      var v = form.elements[n].value.trim();
      if (v) q.set(n, v);
    });
    return api("/v1/audit/events?" + q.toString()).then(function (list) {
      var box = clear("audit-list");
      if (!list.length) { box.appendChild(el("p", { i18n: "none" })); return; }
      box.appendChild(table("audit.caption", ["col.seq", "col.time", "col.kind", "col.principal", "col.subject", "col.actions"], list.map(function (e) {
        var m = /^job\/(\d+)$/.exec(e.subject || "");
        return [String(e.seq), fmtTime(e.time), e.kind, e.principal || "", e.subject || "",
          m ? el("button", { type: "button", class: "small", i18n: "timeline", "data-job": m[1], on: { click: function () { showTimeline(m[1]); } } }) : ""];
      }), "data audit"));
    }).catch(failed);
  }

  function showTimeline(id) {
    var box = clear("timeline");
    box.appendChild(el("h3", { i18n: "t.title", args: { id: id }, tabindex: "-1", id: "timeline-heading" }));
    document.getElementById("timeline-heading").focus();
    return Promise.all([
      api("/v1/audit/events?job=" + encodeURIComponent(id)),
      api("/v1/audit/checkpoint", { text: true }),
      fetch("/v1/audit/key", { credentials: "omit", cache: "no-store" }).then(function (r) { return r.json(); })
    ]).then(function (r) {
      var entries = r[0], cpText = r[1], key = r[2].key;
      var note = el("p", { class: "checkpoint" });
      box.appendChild(note);
      var rows = entries.map(function (e) {
        var cell = el("td", { class: "verify pending", "data-seq": e.seq }, [el("span", { i18n: "t.verifying" })]);
        return { e: e, cell: cell, row: [String(e.seq), fmtTime(e.time), e.kind, e.principal || "", e.subject || "", cell] };
      });
      box.appendChild(table(null, ["col.seq", "col.time", "col.kind", "col.principal", "col.subject", "col.verification"], rows.map(function (x) { return x.row; }), "data timeline"));
      return V.checkpoint(cpText, key).then(function (cp) {
        note.setAttribute("data-i18n", "t.checkpoint");
        note.setAttribute("data-i18n-args", JSON.stringify({ size: cp.size, origin: cp.origin }));
        note.textContent = t("t.checkpoint", { size: cp.size, origin: cp.origin });
        return Promise.all(rows.map(function (x) {
          return api("/v1/audit/proof/inclusion?seq=" + x.e.seq + "&size=" + cp.size).then(function (p) {
            return V.entry(p, cp).then(function (res) { return res; });
          }).catch(function (err) { return { ok: false, seq: x.e.seq, why: err.message }; }).then(function (res) {
            if (res.ok && res.entry && (res.entry.kind !== x.e.kind || res.entry.subject !== x.e.subject)) {
              res = { ok: false, seq: x.e.seq, why: "the record does not match the listed entry" };
            }
            mark(x.cell, res, cp);
          });
        }));
      }, function (err) {
        rows.forEach(function (x) { mark(x.cell, { ok: false, sig: true, why: err.message }); });
      });
    }).catch(failed);
  }

  function mark(cell, res, cp) {
    while (cell.firstChild) cell.removeChild(cell.firstChild);
    cell.className = "verify " + (res.ok ? "ok" : "fail");
    if (res.ok) cell.appendChild(el("span", { i18n: "verify.ok", args: { seq: res.seq, size: cp.size, name: cp.signer } }));
    else if (res.sig) cell.appendChild(el("span", { i18n: "verify.sigfail", args: { why: res.why } }));
    else cell.appendChild(el("span", { i18n: "verify.fail", args: { seq: res.seq, why: res.why } }));
  }

  // Alerts.
  loaders.alerts = function () {
    return api("/v1/audit/alerts").then(function (list) {
      var box = clear("alerts-list");
      if (!list.length) { box.appendChild(el("p", { i18n: "alerts.empty" })); return; }
      box.appendChild(table("alerts.caption", ["col.seq", "col.time", "col.rule", "col.operator", "col.dataset", "col.message", "col.entries"], list.map(function (e) {
        var a = e.data || {};
        return [String(e.seq), fmtTime(e.time), a.rule || e.kind, a.operator || "", a.dataset || "", a.message || "", (a.entries || []).join(", ")];
      }), "data alerts"));
    }).catch(failed);
  };

  // ---- verification (RFC 6962, tlog, C2SP signed notes) --------------------

  var V = (function () {
    var enc = new TextEncoder();
    function b64(s) {
      var bin = atob(s), out = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out;
    }
    function concat(parts) {
      var n = 0; parts.forEach(function (p) { n += p.length; });
      var out = new Uint8Array(n), o = 0;
      parts.forEach(function (p) { out.set(p, o); o += p.length; });
      return out;
    }
    function sha256(bytes) { return crypto.subtle.digest("SHA-256", bytes).then(function (b) { return new Uint8Array(b); }); }
    function equal(a, b) {
      if (a.length !== b.length) return false;
      var d = 0; for (var i = 0; i < a.length; i++) d |= a[i] ^ b[i];
      return d === 0;
    }
    function leafHash(record) { return sha256(concat([new Uint8Array([0]), record])); }
    function nodeHash(l, r) { return sha256(concat([new Uint8Array([1]), l, r])); }
    // maxpow2 is the largest power of 2 less than n (tlog's maxpow2).
    function maxpow2(n) { var k = 1; while (k * 2 < n) k *= 2; return k; }
    // runRecordProof follows golang.org/x/mod/sumdb/tlog: the hash of the
    // subtree [lo, hi) implied by proof p for leaf n.
    function runRecordProof(p, lo, hi, n, leaf) {
      if (!(lo <= n && n < hi)) return Promise.reject(new Error("entry outside the tree"));
      if (lo + 1 === hi) {
        if (p.length !== 0) return Promise.reject(new Error("proof has unneeded hashes"));
        return Promise.resolve(leaf);
      }
      if (p.length === 0) return Promise.reject(new Error("proof too short"));
      var k = maxpow2(hi - lo), last = p[p.length - 1], rest = p.slice(0, -1);
      if (n < lo + k) return runRecordProof(rest, lo, lo + k, n, leaf).then(function (h) { return nodeHash(h, last); });
      return runRecordProof(rest, lo + k, hi, n, leaf).then(function (h) { return nodeHash(last, h); });
    }
    // checkRecord is tlog.CheckRecord: resolves true if the record with
    // leaf hash h is entry n of the tree of size t with root th.
    function checkRecord(p, t, th, n, h) {
      if (t < 0 || n < 0 || n >= t) return Promise.reject(new Error("invalid inputs"));
      return runRecordProof(p, 0, t, n, h).then(function (root) { return equal(root, th); });
    }
    // parseKey reads a note verifier key "name+hexhash+base64(0x01||pub)".
    function parseKey(vkey) {
      // The name holds no "+"; the base64 key may.
      var m = /^([^+]+)\+([0-9a-f]{8})\+(.+)$/.exec(String(vkey).trim());
      if (!m) throw new Error("malformed verifier key");
      var parts = [m[1], m[2], m[3]];
      var raw = b64(parts[2]);
      if (raw.length !== 33 || raw[0] !== 1) throw new Error("verifier key is not Ed25519");
      return sha256(concat([enc.encode(parts[0] + "\n"), raw])).then(function (h) {
        var hash = ((h[0] << 24) >>> 0) + (h[1] << 16) + (h[2] << 8) + h[3];
        if (hash !== parseInt(parts[1], 16)) throw new Error("verifier key hash does not match its key");
        return { name: parts[0], hash: hash, pub: raw.slice(1) };
      });
    }
    // checkpoint verifies a signed checkpoint note against vkey and returns
    // {origin, size, root, signer}.
    function checkpoint(text, vkey) {
      return Promise.resolve().then(function () {
        var split = text.indexOf("\n\n");
        if (split < 0) throw new Error("checkpoint has no signatures");
        var body = text.slice(0, split + 1), sigs = text.slice(split + 2).split("\n");
        var lines = body.split("\n");
        if (lines.length < 4 || !/^[0-9]+$/.test(lines[1])) throw new Error("malformed checkpoint");
        var cp = { origin: lines[0], size: parseInt(lines[1], 10), root: b64(lines[2]) };
        if (cp.root.length !== 32) throw new Error("malformed checkpoint root");
        return parseKey(vkey).then(function (key) {
          if (key.name !== cp.origin) throw new Error("checkpoint origin " + cp.origin + " is not the key's name " + key.name);
          var sig = null;
          sigs.forEach(function (l) {
            var m = /^\u2014 (\S+) (\S+)$/.exec(l);
            if (!m || m[1] !== key.name || sig) return;
            var raw = b64(m[2]);
            if (raw.length !== 68) return;
            var h = ((raw[0] << 24) >>> 0) + (raw[1] << 16) + (raw[2] << 8) + raw[3];
            if (h === key.hash) sig = raw.slice(4);
          });
          if (!sig) throw new Error("no signature by " + key.name);
          return crypto.subtle.importKey("raw", key.pub, { name: "Ed25519" }, false, ["verify"]).then(function (k) {
            return crypto.subtle.verify({ name: "Ed25519" }, k, sig, enc.encode(body));
          }).then(function (ok) {
            if (!ok) throw new Error("bad signature");
            cp.signer = key.name;
            return cp;
          });
        });
      });
    }
    // entry verifies an inclusion proof {seq, size, record, proof} against a
    // verified checkpoint; it resolves {ok, seq, why, entry}.
    function entry(p, cp) {
      return Promise.resolve().then(function () {
        if (p.size !== cp.size) throw new Error("proof is for size " + p.size + ", checkpoint has " + cp.size);
        var e = JSON.parse(p.record);
        if (e.seq !== p.seq) throw new Error("record says entry " + e.seq);
        var hashes = (p.proof || []).map(b64);
        return leafHash(enc.encode(p.record)).then(function (leaf) {
          return checkRecord(hashes, cp.size, cp.root, p.seq, leaf);
        }).then(function (ok) {
          if (!ok) throw new Error("inclusion proof does not lead to the signed root");
          return { ok: true, seq: p.seq, entry: e };
        });
      }).catch(function (err) { return { ok: false, seq: p.seq, why: err.message }; });
    }
    // verifyInclusion is the whole check for one entry, from the wire:
    // checkpoint text, verifier key and the proof answer.
    function verifyInclusion(p, cpText, vkey) {
      return checkpoint(cpText, vkey).then(function (cp) {
        return entry(p, cp).then(function (r) { r.signer = cp.signer; r.size = cp.size; return r; });
      }, function (err) { return { ok: false, seq: p.seq, sig: true, why: err.message }; });
    }
    return { checkpoint: checkpoint, entry: entry, verifyInclusion: verifyInclusion, checkRecord: checkRecord, leafHash: leafHash };
  })();
  window.dsbxVerify = V;

  // ---- wiring -------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", function () {
    var opts = document.querySelectorAll("#f-decision option");
    for (var i = 0; i < opts.length; i++) if (opts[i].value) opts[i].setAttribute("data-i18n", "dec." + opts[i].value);
    document.getElementById("lang-zh").addEventListener("click", function () { setLang("zh"); });
    document.getElementById("lang-en").addEventListener("click", function () { setLang("en"); });
    document.getElementById("signout").addEventListener("click", signOut);
    document.getElementById("signin-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      clear("signin-error");
      signIn(document.getElementById("token").value.trim()).catch(function () { /* shown */ });
    });
    var navs = document.querySelectorAll("#nav button[data-view]");
    for (var n = 0; n < navs.length; n++) {
      navs[n].addEventListener("click", function (ev) { show(ev.currentTarget.getAttribute("data-view")); });
    }
    document.getElementById("apps-filter").addEventListener("submit", function (ev) { ev.preventDefault(); clear("app-detail"); loadApplications(); });
    document.getElementById("audit-filter").addEventListener("submit", function (ev) { ev.preventDefault(); clear("timeline"); queryAudit(); });
    document.getElementById("timeline-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var id = document.getElementById("t-job").value.trim();
      if (/^[0-9]+$/.test(id)) showTimeline(id);
    });
    setLang(lang);
    var tok = sessionStorage.getItem(TOKEN_KEY);
    if (tok) signIn(tok).catch(function () { show("signin"); });
    else show("signin");
    document.body.setAttribute("data-ready", "true");
  });
})();
