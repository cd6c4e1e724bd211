/* c2c-ami console: plain JavaScript, no build step, no CDN. It signs in with a tenant's api
   key (POST /v1/auth/token; the token is kept in sessionStorage), follows the tenant's events
   (GET /v1/events/stream, EventSource) and calls the gateway's own API for everything else. */
"use strict";
(() => {
  const ROOT = location.pathname.replace(/console\/?$/, "");      // "/" or a proxy's prefix
  const T = {
    en: {
      console: "Console", language: "Language", sign_in: "Sign in", sign_out: "Sign out",
      api_key: "Tenant API key", tab_live: "Live", tab_cdr: "Call history", tab_dnc: "Do-not-call",
      tab_hooks: "Webhooks", tab_pbx: "PBX", tab_dialer: "Test dialer", live_calls: "Live calls",
      agents: "Agents", agent: "Agent", number: "Number", state: "State", started: "Started",
      actions: "Actions", no_calls: "No live calls.", extension: "Extension", name: "Name",
      phone_ua: "Phone", address: "Address", target_ext: "Target extension (transfer, listen, whisper, barge)",
      originating: "Starting", ext_ringing: "Agent ringing", ext_answered: "Agent answered",
      dialing: "Dialing", number_ringing: "Customer ringing", number_answered: "Talking", ended: "Ended",
      IDLE: "Idle", RINGING: "Ringing", ONCALL: "On a call",
      hangup: "Hang up", transfer: "Transfer", park: "Park", listen: "Listen", whisper: "Whisper",
      barge: "Barge", pause_rec: "Pause recording", resume_rec: "Resume recording", masked: "recording paused",
      recorded: "recorded", from_date: "From", to_date: "To", phone: "Phone number", status: "Result",
      customer: "Customer", any: "Any", search: "Search", export_csv: "Export CSV",
      billsec: "Talk (s)", recording: "Recording", previous: "Previous", next: "Next", page: "page",
      description: "Note", add: "Add", remove: "Remove", search_number: "Find a number",
      show_all: "Show all", not_listed: "This number is not on the list.", added: "Listed",
      removed: "Removed", events: "Events", pending: "Pending", delivered: "Delivered", dead: "Dead",
      last_error: "Last error", retry_dead: "Retry dead", reload: "Reload", no_hooks: "No webhooks yet.",
      finding: "Finding", where: "Where", fix: "Fix", no_findings: "The check found nothing wrong.",
      pbx_name: "PBX", ami: "AMI link", usable: "Calls possible", checked_at: "Checked at",
      detail: "Detail", yes: "yes", no: "no", skipped: "Not checked", call: "Call", calling: "Calling…",
      live: "live", reconnecting: "reconnecting…", offline: "offline", need_ext: "Enter the target extension first.",
      done: "Done", session_expired: "The session has expired: sign in again.", retried: "queued again",
      transferring: "Transferring… (the extension must answer)", total: "total", call_placed: "Call placed",
      USER_NOT_REGISTERED: "the extension is not registered", USER_BUSY: "busy", NO_ANSWER: "no answer",
      PHONE_BLACKLISTED: "the number is on the do-not-call list", CALL_NOT_ANSWERED: "the customer has not answered yet",
      CALL_BUSY: "another action is under way on this call", RATE_LIMITED: "too many requests, try again shortly",
      PBX_UNAVAILABLE: "the PBX is not available", FORBIDDEN: "not allowed", CALL_NOT_FOUND: "no such live call",
      UNAUTHORIZED: "wrong API key", INVALID_PARAMS: "invalid input", CALL_FAILED: "the call failed",
      NOT_RECORDING: "the call is not being recorded", CALLER_ID_NOT_ALLOWED: "caller ID not allowed",
    },
    vi: {
      console: "Bảng điều khiển", language: "Ngôn ngữ", sign_in: "Đăng nhập", sign_out: "Đăng xuất",
      api_key: "Khóa API của tenant", tab_live: "Trực tiếp", tab_cdr: "Lịch sử cuộc gọi",
      tab_dnc: "Danh sách chặn", tab_hooks: "Webhook", tab_pbx: "Tổng đài", tab_dialer: "Gọi thử",
      live_calls: "Cuộc gọi đang diễn ra", agents: "Nhân viên", agent: "Nhân viên", number: "Số gọi",
      state: "Trạng thái", started: "Bắt đầu", actions: "Thao tác", no_calls: "Không có cuộc gọi nào.",
      extension: "Máy nhánh", name: "Tên", phone_ua: "Điện thoại", address: "Địa chỉ",
      target_ext: "Máy nhánh đích (chuyển, nghe, nhắc, chen)", originating: "Đang khởi tạo",
      ext_ringing: "Máy nhánh đổ chuông", ext_answered: "Máy nhánh đã nghe", dialing: "Đang quay số",
      number_ringing: "Khách hàng đổ chuông", number_answered: "Đang đàm thoại", ended: "Đã kết thúc",
      IDLE: "Rảnh", RINGING: "Đổ chuông", ONCALL: "Đang gọi",
      hangup: "Gác máy", transfer: "Chuyển", park: "Giữ máy", listen: "Nghe", whisper: "Nhắc",
      barge: "Chen", pause_rec: "Tạm dừng ghi âm", resume_rec: "Tiếp tục ghi âm", masked: "đang tạm dừng ghi âm",
      recorded: "có ghi âm", from_date: "Từ ngày", to_date: "Đến ngày", phone: "Số điện thoại",
      status: "Kết quả", customer: "Khách hàng", any: "Tất cả", search: "Tìm", export_csv: "Xuất CSV",
      billsec: "Đàm thoại (giây)", recording: "Ghi âm", previous: "Trước", next: "Sau", page: "trang",
      description: "Ghi chú", add: "Thêm", remove: "Xóa", search_number: "Tìm số", show_all: "Xem tất cả",
      not_listed: "Số này không có trong danh sách.", added: "Đã thêm", removed: "Đã xóa",
      events: "Sự kiện", pending: "Chờ gửi", delivered: "Đã gửi", dead: "Thất bại",
      last_error: "Lỗi gần nhất", retry_dead: "Gửi lại", reload: "Tải lại", no_hooks: "Chưa có webhook nào.",
      finding: "Vấn đề", where: "Ở đâu", fix: "Cách sửa", no_findings: "Kiểm tra không thấy vấn đề nào.",
      pbx_name: "Tổng đài", ami: "Kết nối AMI", usable: "Gọi được", checked_at: "Kiểm tra lúc",
      detail: "Chi tiết", yes: "có", no: "không", skipped: "Chưa kiểm tra", call: "Gọi", calling: "Đang gọi…",
      live: "trực tuyến", reconnecting: "đang kết nối lại…", offline: "ngoại tuyến",
      need_ext: "Hãy nhập máy nhánh đích trước.", done: "Xong",
      session_expired: "Phiên làm việc đã hết hạn, vui lòng đăng nhập lại.", retried: "đã xếp gửi lại",
      transferring: "Đang chuyển… (máy nhánh đích phải nghe máy)", total: "tổng", call_placed: "Đã gọi",
      USER_NOT_REGISTERED: "máy nhánh chưa đăng ký", USER_BUSY: "máy bận", NO_ANSWER: "không trả lời",
      PHONE_BLACKLISTED: "số nằm trong danh sách không gọi", CALL_NOT_ANSWERED: "khách hàng chưa nghe máy",
      CALL_BUSY: "cuộc gọi đang có thao tác khác", RATE_LIMITED: "quá nhiều yêu cầu, hãy thử lại sau",
      PBX_UNAVAILABLE: "tổng đài không sẵn sàng", FORBIDDEN: "không được phép", CALL_NOT_FOUND: "không có cuộc gọi này",
      UNAUTHORIZED: "khóa API không đúng", INVALID_PARAMS: "thông tin không hợp lệ", CALL_FAILED: "cuộc gọi thất bại",
      NOT_RECORDING: "cuộc gọi không được ghi âm", CALLER_ID_NOT_ALLOWED: "số hiển thị không được phép",
    },
  };
  const $ = (selector) => document.querySelector(selector);
  let lang = localStorage.getItem("c2c.lang") || ((navigator.language || "").toLowerCase().startsWith("en") ? "en" : "vi");
  let token = sessionStorage.getItem("c2c.token");
  const t = (key) => (T[lang] && T[lang][key]) || T.en[key] || key;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function notice(text, bad = false) {
    const out = $("#notice");
    out.textContent = text || "";
    out.classList.toggle("bad", bad);
  }

  function failure(err) {
    return err.code ? `${t(err.code)} (${err.message})` : String(err.message || err);
  }

  // -- the API --------------------------------------------------------------------------------
  async function api(method, path, body) {
    const headers = {Authorization: `Bearer ${token}`};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(ROOT + path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
    let data = null;
    try { data = await resp.json(); } catch (_) { /* not JSON */ }
    if (resp.status === 401 && token) { signOut(t("session_expired")); }
    if (!resp.ok) {
      const err = new Error((data && (data.message || data.error)) || `HTTP ${resp.status}`);
      err.code = data && data.error;
      err.status = resp.status;
      err.data = data;
      throw err;
    }
    return data;
  }

  const query = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)).toString();

  // -- language -------------------------------------------------------------------------------
  function applyLang() {
    document.documentElement.lang = lang;
    $("#lang").value = lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    renderLink();
    renderAllCalls();
    renderAllAgents();
  }

  // -- signing in -------------------------------------------------------------------------------
  async function signIn(event) {
    event.preventDefault();
    const key = $("#api-key").value.trim();
    $("#signin-error").textContent = "";
    try {
      const resp = await fetch(ROOT + "v1/auth/token", {method: "POST", headers: {"Content-Type": "application/json"},
                                                        body: JSON.stringify({api_key: key})});
      const data = await resp.json();
      if (!resp.ok) throw Object.assign(new Error(data.message || resp.status), {code: data.error});
      token = data.data.token;
      sessionStorage.setItem("c2c.token", token);
      $("#api-key").value = "";
      start();
    } catch (err) {
      $("#signin-error").textContent = failure(err);
    }
  }

  function signOut(message) {
    token = null;
    sessionStorage.removeItem("c2c.token");
    if (stream) stream.close();
    stream = null;
    $("#app").hidden = true;
    $("#signout").hidden = true;
    $("#signin").hidden = false;
    $("#signin-error").textContent = message || "";
    linkState = "off";
    renderLink();
  }

  function start() {
    $("#signin").hidden = true;
    $("#app").hidden = false;
    $("#signout").hidden = false;
    connect();
    showTab("live");
  }

  // -- tabs -----------------------------------------------------------------------------------
  function showTab(name) {
    for (const button of document.querySelectorAll("[data-tab]")) {
      const on = button.dataset.tab === name;
      button.setAttribute("aria-selected", on ? "true" : "false");
      button.tabIndex = on ? 0 : -1;
    }
    for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== `tab-${name}`;
    notice("");
    if (name === "cdr" && !cdrLoaded) searchCdr(1);
    if (name === "dnc") listDnc(0);
    if (name === "hooks") loadHooks();
    if (name === "pbx") loadPbx();
  }

  function tabKeys(event) {
    const tabs = [...document.querySelectorAll("[data-tab]")];
    const at = tabs.indexOf(document.activeElement);
    if (at < 0 || !["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
    event.preventDefault();
    const next = event.key === "Home" ? 0 : event.key === "End" ? tabs.length - 1
      : (at + (event.key === "ArrowRight" ? 1 : -1) + tabs.length) % tabs.length;
    tabs[next].focus();
    showTab(tabs[next].dataset.tab);
  }

  // -- live calls and agents, from the event stream ----------------------------------------------
  const calls = new Map();      // call_id -> what the table shows
  const agents = new Map();     // extension -> the monitor's row
  let stream = null;
  let lastId = null;
  let linkState = "off";

  function renderLink() {
    const pill = $("#link");
    pill.dataset.state = linkState;
    pill.textContent = linkState === "live" ? t("live") : linkState === "retry" ? t("reconnecting") : t("offline");
  }

  function connect() {
    if (stream) stream.close();
    const params = {token};
    if (lastId !== null) params.last_event_id = lastId;
    stream = new EventSource(`${ROOT}v1/events/stream?${query(params)}`);
    stream.onopen = () => { linkState = "live"; renderLink(); loadLive(); };
    stream.onerror = () => {
      linkState = "retry";
      renderLink();
      if (stream.readyState === EventSource.CLOSED && token) setTimeout(() => token && connect(), 3000);
    };
    const track = (handler) => (message) => {
      if (message.lastEventId) lastId = message.lastEventId;
      handler(JSON.parse(message.data));
    };
    stream.addEventListener("state", track(callChanged));
    for (const name of ["ringing", "answered", "hangup", "cdr"]) stream.addEventListener(name, track(callChanged));
    stream.addEventListener("agent", track(agentChanged));
    stream.addEventListener("reset", track(() => loadLive()));
  }

  async function loadLive() {
    try {
      const [live, monitor] = await Promise.all([api("GET", "v1/call"), api("GET", "v1/monitor/agent")]);
      const seen = new Set();
      for (const c of live.data) {
        seen.add(c.call_id);
        const known = calls.get(c.call_id);
        calls.set(c.call_id, {call_id: c.call_id, ext: c.source, final_ext: known ? known.final_ext : c.source,
          number: c.destination, state: known ? known.state : c.call_state, started: c.created_time,
          customer: c.customer_id, recorded: known ? known.recorded : false, masked: known ? known.masked : false});
      }
      for (const [id, c] of calls) if (!seen.has(id) && c.state !== "ended") calls.delete(id);
      agents.clear();
      for (const row of monitor.data) agents.set(row.extension, {...row, registered: true});
      renderAllCalls();
      renderAllAgents();
    } catch (err) {
      notice(failure(err), true);
    }
  }

  function callChanged(p) {
    const known = calls.get(p.call_id) || {};
    const masks = p.recording_masked || [];
    const c = {call_id: p.call_id, ext: p.extension, final_ext: p.final_ext || p.extension, number: p.to_number,
      state: p.call_state, started: p.time_started, customer: p.customer_id, recorded: !!p.recorded,
      masked: masks.length > 0 && masks[masks.length - 1].end === null, status: p.status || known.status};
    if (known.state === "ended" && c.state !== "ended") return;       // a late event of an ended call
    calls.set(p.call_id, c);
    renderCall(c);
    if (c.state === "ended") {
      setTimeout(() => { calls.delete(c.call_id); const row = rowOf("#calls", c.call_id); if (row) row.remove(); emptyCalls(); }, 20000);
    }
  }

  function agentChanged(row) {
    if (row.registered) agents.set(row.extension, row); else agents.delete(row.extension);
    renderAllAgents();
  }

  function rowOf(table, id) {
    return [...document.querySelectorAll(`${table} tbody tr`)].find((tr) => tr.dataset.id === id);
  }

  function emptyCalls() {
    $("#calls-empty").hidden = calls.size > 0;
  }

  function renderAllCalls() {
    const body = $("#calls tbody");
    body.textContent = "";
    [...calls.values()].sort((a, b) => String(b.started).localeCompare(String(a.started))).forEach(renderCall);
  }

  function action(name, label, enabled, cls) {
    return el("button", {type: "button", class: cls || "secondary", dataset: {action: name}, disabled: !enabled}, t(label || name));
  }

  function renderCall(c) {
    const talking = c.state === "number_answered";
    const over = c.state === "ended";
    const who = c.final_ext && c.final_ext !== c.ext ? `${c.ext} → ${c.final_ext}` : c.ext;
    const flags = [c.recorded ? t("recorded") : null, c.masked ? t("masked") : null].filter(Boolean).join(", ");
    const stateText = over && c.status ? `${t("ended")} (${c.status})` : t(c.state);
    const tr = el("tr", {dataset: {id: c.call_id, state: c.state}, class: over ? "ended" : null},
      el("td", {text: who}),
      el("td", {}, el("span", {text: c.number || ""}), c.customer ? el("div", {class: "empty", text: c.customer}) : null),
      el("td", {}, el("span", {class: "state", dataset: {state: c.state}, text: stateText}),
        flags ? el("div", {class: "empty", text: flags}) : null),
      el("td", {text: c.started || ""}),
      el("td", {}, el("div", {class: "actions"},
        over ? null : action("hangup", "hangup", true, "danger"),
        over ? null : action("transfer", null, talking),
        over ? null : action("park", null, talking),
        over ? null : action("listen", null, talking),
        over ? null : action("whisper", null, talking),
        over ? null : action("barge", null, talking),
        over || !c.recorded ? null : c.masked ? action("resume", "resume_rec", talking) : action("pause", "pause_rec", talking))));
    const old = rowOf("#calls", c.call_id);
    if (old) {
      const focused = document.activeElement && old.contains(document.activeElement) ? document.activeElement.dataset.action : null;
      old.replaceWith(tr);
      if (focused) { const again = tr.querySelector(`[data-action="${focused}"]`); if (again && !again.disabled) again.focus(); }
    } else {
      $("#calls tbody").prepend(tr);
    }
    emptyCalls();
  }

  async function callAction(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const id = button.closest("tr").dataset.id;
    const what = button.dataset.action;
    const target = $("#target-ext").value.trim();
    const needsExt = ["transfer", "listen", "whisper", "barge"].includes(what);
    if (needsExt && !target) { notice(t("need_ext"), true); $("#target-ext").focus(); return; }
    const path = `v1/call/${encodeURIComponent(id)}/`;
    const requests = {
      hangup: ["DELETE", `v1/calls/${encodeURIComponent(id)}`],
      transfer: ["POST", path + "transfer", {ext: target, legs: "bleg"}],
      park: ["POST", path + "park", {legs: "bleg"}],
      listen: ["POST", path + "listen", {ext: target}],
      whisper: ["POST", path + "whisper", {ext: target}],
      barge: ["POST", path + "barge", {ext: target}],
      pause: ["POST", path + "recording/pause"],
      resume: ["POST", path + "recording/resume"],
    };
    const [method, url, body] = requests[what];
    button.disabled = true;
    notice(what === "transfer" ? t("transferring") : "");
    try {
      await api(method, url, body);
      notice(`${t(what === "pause" ? "pause_rec" : what === "resume" ? "resume_rec" : what)}: ${t("done")}`);
    } catch (err) {
      notice(`${t(what === "pause" ? "pause_rec" : what === "resume" ? "resume_rec" : what)}: ${failure(err)}`, true);
    } finally {
      button.disabled = false;
    }
  }

  function renderAllAgents() {
    const body = $("#agents tbody");
    body.textContent = "";
    const busy = (row) => (row.call_state === "IDLE" ? 1 : 0);      // who rings or talks comes first
    const order = (a, b) => busy(a) - busy(b) || a.extension.localeCompare(b.extension, undefined, {numeric: true});
    for (const row of [...agents.values()].sort(order)) {
      body.append(el("tr", {dataset: {id: row.extension, state: row.call_state}},
        el("td", {text: row.extension}),
        el("td", {text: row.agent_name || ""}),
        el("td", {}, el("span", {class: "state", dataset: {state: row.call_state}, text: t(row.call_state)})),
        el("td", {text: row.destination || ""}),
        el("td", {text: row.user_agent || ""}),
        el("td", {text: row.network_ip || ""})));
    }
  }

  // -- call history (CDRs) --------------------------------------------------------------------
  let cdrPage = 1;
  let cdrLoaded = false;
  const CDR_LIMIT = 25;

  function cdrFilters() {
    return Object.fromEntries(new FormData($("#cdr-form")).entries());
  }

  async function searchCdr(page) {
    cdrLoaded = true;
    try {
      const data = await api("GET", `v1/cdr?${query({...cdrFilters(), page, limit: CDR_LIMIT})}`);
      cdrPage = page;
      const body = $("#cdrs tbody");
      body.textContent = "";
      for (const r of data.data) {
        body.append(el("tr", {dataset: {id: r.call_id}},
          el("td", {text: r.time_started}), el("td", {text: r.extension}), el("td", {text: r.to_number}),
          el("td", {text: r.status}), el("td", {text: String(r.billsec)}), el("td", {text: r.customer_id || ""}),
          el("td", {}, r.recording_url ? el("audio", {controls: true, preload: "none", src: r.recording_url}) : null)));
      }
      const pages = Math.max(1, Math.ceil(data.total / CDR_LIMIT));
      $("#cdr-page").textContent = `${t("page")} ${page} / ${pages}${data.total_exact === false ? "+" : ""} · ${data.total} ${t("total")}`;
      $("#cdr-prev").disabled = page <= 1;
      $("#cdr-next").disabled = page >= pages;
      notice("");
    } catch (err) {
      notice(failure(err), true);
    }
  }

  const CSV_COLUMNS = ["call_id", "time_started", "time_answered", "time_ended", "extension", "from_number",
    "to_number", "hotline", "status", "cause", "duration", "billsec", "customer_id", "recording_url"];

  async function exportCsv() {
    const rows = [];
    try {
      let data = await api("GET", `v1/cdr?${query({...cdrFilters(), limit: 500})}`);
      while (data.data.length && rows.length < 50000) {
        rows.push(...data.data);
        if (!data.scroll_id) break;
        data = await api("GET", `v1/cdr?${query({...cdrFilters(), scroll_id: data.scroll_id, limit: 500})}`);
      }
    } catch (err) {
      notice(failure(err), true);
      return;
    }
    const cell = (v) => {
      const s = v === null || v === undefined ? "" : String(v);
      return /[",\n\r]/.test(s) || /^[=+\-@]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
    };
    const csv = [CSV_COLUMNS.join(","), ...rows.map((r) => CSV_COLUMNS.map((c) => cell(r[c])).join(","))].join("\r\n");
    const link = el("a", {href: URL.createObjectURL(new Blob(["\ufeff" + csv], {type: "text/csv;charset=utf-8"})),
                          download: "cdr.csv"});
    document.body.append(link);
    link.click();
    link.remove();
  }

  // -- the do-not-call list -------------------------------------------------------------------
  let dncOffset = 0;
  const DNC_LIMIT = 50;

  function dncRow(entry) {
    return el("tr", {dataset: {id: entry.phone_number}},
      el("td", {text: entry.phone_number}), el("td", {text: entry.description || ""}),
      el("td", {}, el("button", {type: "button", class: "danger", dataset: {remove: entry.phone_number}}, t("remove"))));
  }

  async function listDnc(offset) {
    try {
      const data = await api("GET", `v1/blacklist?${query({limit: DNC_LIMIT, offset})}`);
      dncOffset = offset;
      const body = $("#dnc tbody");
      body.textContent = "";
      data.data.forEach((entry) => body.append(dncRow(entry)));
      $("#dnc-page").textContent = `${offset + 1}–${offset + data.data.length} / ${data.total}`;
      $("#dnc-prev").disabled = offset <= 0;
      $("#dnc-next").disabled = offset + DNC_LIMIT >= data.total;
    } catch (err) {
      notice(failure(err), true);
    }
  }

  async function searchDnc(event) {
    event.preventDefault();
    const q = new FormData(event.target).get("q").trim();
    if (!q) return listDnc(0);
    const body = $("#dnc tbody");
    body.textContent = "";
    try {
      body.append(dncRow(await api("GET", `v1/blacklist/${encodeURIComponent(q)}`)));
      notice("");
    } catch (err) {
      notice(err.status === 404 ? t("not_listed") : failure(err), err.status !== 404);
    }
  }

  async function addDnc(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    const entry = {phone_number: form.get("phone_number").trim(), description: form.get("description").trim()};
    try {
      const data = await api("POST", "v1/blacklist", {blacklist: [entry]});
      if (data.success && data.success.length) {
        notice(`${t("added")}: ${entry.phone_number}`);
        event.target.reset();
      } else {
        notice((data.fail || []).map((f) => Object.entries(f).map(([k, v]) => `${k}: ${v}`).join("")).join("; "), true);
      }
      listDnc(dncOffset);
    } catch (err) {
      notice(failure(err), true);
    }
  }

  async function removeDnc(event) {
    const button = event.target.closest("button[data-remove]");
    if (!button) return;
    try {
      await api("DELETE", "v1/blacklist", {blacklist: [button.dataset.remove]});
      notice(`${t("removed")}: ${button.dataset.remove}`);
      listDnc(dncOffset);
    } catch (err) {
      notice(failure(err), true);
    }
  }

  // -- webhooks -----------------------------------------------------------------------------
  async function loadHooks() {
    try {
      const data = await api("GET", "v1/event/deliveries");
      const body = $("#hooks tbody");
      body.textContent = "";
      for (const h of data.data) {
        body.append(el("tr", {dataset: {id: h.id}},
          el("td", {}, el("code", {text: h.url})), el("td", {text: h.event}),
          el("td", {text: String(h.pending)}), el("td", {text: String(h.delivered)}), el("td", {text: String(h.dead)}),
          el("td", {text: h.last_error || ""}),
          el("td", {}, el("button", {type: "button", class: "secondary", dataset: {retry: h.id}, disabled: h.dead === 0},
                         t("retry_dead")))));
      }
      if (!data.data.length) body.append(el("tr", {}, el("td", {colspan: "7", class: "empty", text: t("no_hooks")})));
    } catch (err) {
      notice(failure(err), true);
    }
  }

  async function retryHook(event) {
    const button = event.target.closest("button[data-retry]");
    if (!button) return;
    try {
      const data = await api("POST", `v1/event/${encodeURIComponent(button.dataset.retry)}/retry`);
      notice(`${data.retried} ${t("retried")}`);
      loadHooks();
    } catch (err) {
      notice(failure(err), true);
    }
  }

  // -- the PBX --------------------------------------------------------------------------------
  async function loadPbx() {
    try {
      const {pbx} = await api("GET", "v1/pbx/status");
      const facts = $("#pbx");
      facts.textContent = "";
      const add = (label, value) => facts.append(el("dt", {text: t(label)}), el("dd", {text: value}));
      add("pbx_name", pbx.name);
      add("ami", pbx.ami);
      add("usable", pbx.usable ? t("yes") : t("no"));
      if (pbx.detail) add("detail", pbx.detail);
      add("checked_at", pbx.checked_at ? new Date(pbx.checked_at * 1000).toLocaleString(lang) : "—");
      for (const skipped of pbx.skipped) add("skipped", skipped);
      const body = $("#findings tbody");
      body.textContent = "";
      for (const f of pbx.findings) {
        body.append(el("tr", {dataset: {id: f.code}, class: f.blocking ? "bad" : null},
          el("td", {}, el("strong", {text: f.code}), el("div", {text: f.what})),
          el("td", {}, el("code", {text: f.where})), el("td", {}, el("code", {text: f.fix}))));
      }
      $("#findings-empty").hidden = pbx.findings.length > 0;
    } catch (err) {
      notice(failure(err), true);
    }
  }

  // -- the test dialer ----------------------------------------------------------------------------
  async function dial(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    const out = $("#dialer-result");
    out.textContent = t("calling");
    try {
      const data = await api("GET", `v1/click2call/async?${query({ext: form.get("ext").trim(), phone: form.get("phone").trim()})}`);
      out.textContent = `${t("call_placed")}: ${data.call_id}`;
      out.dataset.callId = data.call_id;
    } catch (err) {
      out.textContent = failure(err);
    }
  }

  // -- wiring -----------------------------------------------------------------------------------
  $("#lang").addEventListener("change", (e) => { lang = e.target.value; localStorage.setItem("c2c.lang", lang); applyLang(); });
  $("#signin-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", () => signOut(""));
  for (const button of document.querySelectorAll("[data-tab]")) button.addEventListener("click", () => showTab(button.dataset.tab));
  $(".tabs").addEventListener("keydown", tabKeys);
  $("#calls tbody").addEventListener("click", callAction);
  $("#cdr-form").addEventListener("submit", (e) => { e.preventDefault(); searchCdr(1); });
  $("#cdr-prev").addEventListener("click", () => searchCdr(cdrPage - 1));
  $("#cdr-next").addEventListener("click", () => searchCdr(cdrPage + 1));
  $("#cdr-csv").addEventListener("click", exportCsv);
  $("#dnc-add").addEventListener("submit", addDnc);
  $("#dnc-search").addEventListener("submit", searchDnc);
  $("#dnc-all").addEventListener("click", () => listDnc(0));
  $("#dnc-prev").addEventListener("click", () => listDnc(Math.max(0, dncOffset - DNC_LIMIT)));
  $("#dnc-next").addEventListener("click", () => listDnc(dncOffset + DNC_LIMIT));
  $("#dnc tbody").addEventListener("click", removeDnc);
  $("#hooks tbody").addEventListener("click", retryHook);
  $("#hooks-reload").addEventListener("click", loadHooks);
  $("#pbx-reload").addEventListener("click", loadPbx);
  $("#dialer").addEventListener("submit", dial);
  applyLang();
  if (token) start(); else $("#api-key").focus();
})();
