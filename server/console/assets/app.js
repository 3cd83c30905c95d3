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
      return opts.text ? resp.text() : resp.json();
    });
  }

  function failed(err) { status("error", { msg: err.message }, true); }

  // ---- sign in ------------------------------------------------------------

  function hasRole(r) { return !!me && me.roles.indexOf(r) >= 0; }
  function isOverseer() { return hasRole("regulator") || hasRole("admin"); }

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
        var need = items[i].getAttribute("data-role");
        items[i].hidden = need === "overseer" ? !isOverseer() : !hasRole(need);
      }
      show(hasRole("reviewer") ? "reviews" : isOverseer() ? "audit" : "catalog");
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
    ["catalog-list", "catalog-fields", "reviews-list", "review-detail", "audit-list", "timeline", "alerts-list", "status"].forEach(clear);
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
    document.getElementById("fields-heading").focus();
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
