/* c2c-ami click-to-call widget for CRM pages (GET /widget.js). Include it with an
   extension-scoped token the CRM's backend obtained (POST /v1/auth/token {"api_key", "ext"}):

     <script src="https://c2c.example.com/widget.js" data-token="c2c1.…" defer></script>

   It turns tel: links and elements with data-c2c-phone into click-to-call buttons; a click
   places the call (GET /v1/click2call/async) and a small toast follows it from the event
   stream (GET /v1/events/stream), with a hang-up button, and says in words why a call failed.
   The page's origin must be listed in the gateway's api.cors_origins. Optional attributes:
   data-ext (else read from the token), data-lang ("vi" or "en"; else the page's language). */
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || window.c2cWidget) return;
  const src = new URL(script.src, location.href);
  const base = src.href.replace(/widget\.js(\?.*)?$/, "");
  const token = script.dataset.token || "";
  const ext = script.dataset.ext || extOfToken(token);
  const lang = (script.dataset.lang || document.documentElement.lang || navigator.language || "vi").toLowerCase().startsWith("en") ? "en" : "vi";
  const WORDS = {
    en: {
      call: "Call", starting: "Calling your phone…", ext_ringing: "Your phone is ringing: pick it up",
      ext_answered: "Calling the customer…", dialing: "Calling the customer…", number_ringing: "The customer's phone is ringing",
      number_answered: "Talking", ended: "Call ended", hangup: "Hang up", close: "Close", cancelled: "Call cancelled",
      not_registered: "Not registered: your phone is not connected", busy: "Busy: your phone is busy or rejected the call",
      no_answer: "No answer: your phone did not answer", dnc: "Do-not-call: this number is on the do-not-call list",
      number_busy: "Busy: the customer's line is busy", number_no_answer: "No answer from the customer",
      congestion: "The network is congested: try again", failed: "The call failed", session: "The session has expired: reload the page",
      limited: "Too many calls: wait a moment", unavailable: "The phone system is not available", forbidden: "Not allowed",
      caller_id: "This caller ID is not allowed", invalid: "Not a valid number",
    },
    vi: {
      call: "Gọi", starting: "Đang gọi máy của bạn…", ext_ringing: "Máy của bạn đang đổ chuông: hãy nhấc máy",
      ext_answered: "Đang gọi khách hàng…", dialing: "Đang gọi khách hàng…", number_ringing: "Máy khách hàng đang đổ chuông",
      number_answered: "Đang đàm thoại", ended: "Cuộc gọi đã kết thúc", hangup: "Gác máy", close: "Đóng", cancelled: "Đã hủy cuộc gọi",
      not_registered: "Chưa đăng ký: điện thoại của bạn chưa kết nối", busy: "Máy bận: điện thoại của bạn đang bận hoặc đã từ chối",
      no_answer: "Không trả lời: điện thoại của bạn không nghe máy", dnc: "Không được gọi: số này nằm trong danh sách chặn",
      number_busy: "Máy bận: khách hàng đang bận", number_no_answer: "Khách hàng không trả lời",
      congestion: "Mạng đang nghẽn: hãy thử lại", failed: "Cuộc gọi thất bại", session: "Phiên đã hết hạn: hãy tải lại trang",
      limited: "Gọi quá nhiều: hãy chờ một lát", unavailable: "Tổng đài không sẵn sàng", forbidden: "Không được phép",
      caller_id: "Số hiển thị không được phép", invalid: "Số không hợp lệ",
    },
  }[lang];
  const ERRORS = {USER_NOT_REGISTERED: "not_registered", USER_BUSY: "busy", NO_ANSWER: "no_answer",
    PHONE_BLACKLISTED: "dnc", UNAUTHORIZED: "session", RATE_LIMITED: "limited", PBX_UNAVAILABLE: "unavailable",
    FORBIDDEN: "forbidden", CALLER_ID_NOT_ALLOWED: "caller_id", INVALID_PARAMS: "invalid"};

  function extOfToken(value) {
    try {
      const part = value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "===".slice((part.length + 3) % 4))).e || "";
    } catch (_) {
      return "";
    }
  }

  // -- looks ----------------------------------------------------------------------------------
  const style = document.createElement("style");
  style.textContent = `
    .c2c-call { cursor: pointer; }
    .c2c-call::before { content: "☎ "; }
    .c2c-toast { position: fixed; right: 1rem; bottom: 1rem; z-index: 2147483647; max-width: 22rem;
      font: 14px/1.4 system-ui, "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif; color: #1d2733;
      background: #fff; border: 1px solid #c9d2dc; border-left: 5px solid #0b63c5; border-radius: 8px;
      box-shadow: 0 6px 24px rgba(0,0,0,.18); padding: .75rem .9rem; }
    .c2c-toast[data-outcome="fail"] { border-left-color: #b3261e; }
    .c2c-toast[data-outcome="ok"] { border-left-color: #137a3a; }
    .c2c-toast .c2c-number { font-weight: 600; }
    .c2c-toast .c2c-buttons { display: flex; gap: .4rem; margin-top: .5rem; }
    .c2c-toast button { font: inherit; padding: .3rem .7rem; border-radius: 5px; cursor: pointer;
      border: 1px solid #b3261e; background: #b3261e; color: #fff; }
    .c2c-toast button.c2c-close { background: #fff; color: #1d2733; border-color: #c9d2dc; }
    .c2c-toast button:focus-visible, .c2c-call:focus-visible { outline: 3px solid #f2b705; outline-offset: 2px; }`;
  document.head.append(style);

  // -- the toast ------------------------------------------------------------------------------
  let toast = null;
  let current = null;         // {call_id, phone}
  const early = new Map();    // call_id -> events that came before the click's answer

  function show(phone, text, outcome) {
    if (!toast) {
      toast = document.createElement("div");
      toast.className = "c2c-toast";
      toast.setAttribute("role", "status");
      toast.setAttribute("aria-live", "polite");
      toast.innerHTML = '<div class="c2c-number"></div><div class="c2c-text"></div><div class="c2c-buttons">' +
        '<button type="button" class="c2c-hangup"></button><button type="button" class="c2c-close"></button></div>';
      toast.querySelector(".c2c-hangup").textContent = WORDS.hangup;
      toast.querySelector(".c2c-close").textContent = WORDS.close;
      toast.querySelector(".c2c-hangup").addEventListener("click", hangUp);
      toast.querySelector(".c2c-close").addEventListener("click", () => { toast.remove(); toast = null; });
      document.body.append(toast);
    }
    toast.querySelector(".c2c-number").textContent = phone;
    toast.querySelector(".c2c-text").textContent = text;
    toast.dataset.outcome = outcome || "progress";
    toast.querySelector(".c2c-hangup").hidden = !!outcome;
  }

  function outcomeOf(p) {
    if (p.status === "ANSWERED") return [WORDS.ended, "ok"];
    if (p.hangup_by === "api" || p.status === "CANCEL" && p.number_failure === "cancelled") return [WORDS.cancelled, "fail"];
    const ext = {rejected: "busy", no_answer: "no_answer", unavailable: "not_registered"}[p.ext_failure];
    if (ext) return [WORDS[ext], "fail"];
    const number = {busy: "number_busy", no_answer: "number_no_answer", congestion: "congestion"}[p.number_failure];
    return [WORDS[number || "failed"], "fail"];
  }

  function follow(p) {
    if (!current || p.call_id !== current.call_id || current.over) return;
    if (p.call_state === "ended") {
      current.over = true;
      const [text, outcome] = outcomeOf(p);
      show(current.phone, text, outcome);
    } else if (WORDS[p.call_state]) {
      show(current.phone, WORDS[p.call_state]);
    }
  }

  // -- the stream -------------------------------------------------------------------------------
  let stream = null;
  let opened = Promise.resolve();
  // The stream sends what happens from its opening on: the click waits for it to be open (at
  // most 3 s), else a call refused at once would end before the stream could tell.
  function listen() {
    if (stream || !token) return opened;
    stream = new EventSource(`${base}v1/events/stream?token=${encodeURIComponent(token)}`);
    opened = new Promise((resolve) => {
      stream.addEventListener("open", resolve, {once: true});
      stream.addEventListener("error", resolve, {once: true});
      setTimeout(resolve, 3000);
    });
    const onEvent = (message) => {
      const p = JSON.parse(message.data);
      if (current && p.call_id === current.call_id) follow(p);
      else if (!current || !current.call_id) {
        const list = early.get(p.call_id) || [];
        list.push(p);
        early.set(p.call_id, list.slice(-20));
        if (early.size > 20) early.delete(early.keys().next().value);
      }
    };
    for (const name of ["state", "hangup"]) stream.addEventListener(name, onEvent);
    return opened;
  }

  // -- calling ------------------------------------------------------------------------------------
  async function call(phone) {
    const mine = current = {call_id: null, phone};
    show(phone, WORDS.starting);
    await listen();
    if (current !== mine) return;            // another click came meanwhile: it is the one shown
    try {
      const resp = await fetch(`${base}v1/click2call/async?ext=${encodeURIComponent(ext)}&phone=${encodeURIComponent(phone)}`,
                               {headers: {Authorization: `Bearer ${token}`}});
      const body = await resp.json().catch(() => ({}));
      if (current !== mine) return;
      if (!resp.ok || body.status !== "success") {
        mine.over = true;
        show(phone, WORDS[ERRORS[body.error] || "failed"], "fail");
        return;
      }
      mine.call_id = body.call_id;
      for (const p of early.get(body.call_id) || []) follow(p);
      early.clear();
    } catch (_) {
      if (current !== mine) return;
      mine.over = true;
      show(phone, WORDS.unavailable, "fail");
    }
  }

  async function hangUp() {
    if (!current || !current.call_id) return;
    await fetch(`${base}v1/calls/${encodeURIComponent(current.call_id)}`,
                {method: "DELETE", headers: {Authorization: `Bearer ${token}`}}).catch(() => null);
  }

  // -- the buttons --------------------------------------------------------------------------------
  function phoneOf(node) {
    if (node.dataset.c2cPhone) return node.dataset.c2cPhone;
    return decodeURIComponent((node.getAttribute("href") || "").replace(/^tel:/i, "")).split(/[;?]/)[0];
  }

  function enhance(node) {
    if (node.dataset.c2cReady) return;
    node.dataset.c2cReady = "1";
    node.classList.add("c2c-call");
    if (!/^(A|BUTTON)$/.test(node.tagName)) {
      node.setAttribute("role", "button");
      node.tabIndex = 0;
    }
    if (!node.getAttribute("title")) node.setAttribute("title", `${WORDS.call} ${phoneOf(node)}`);
  }

  function scan(root) {
    if (root.nodeType !== 1) return;
    const selector = 'a[href^="tel:" i], [data-c2c-phone]';
    if (root.matches(selector)) enhance(root);
    root.querySelectorAll(selector).forEach(enhance);
  }

  document.addEventListener("click", (event) => {
    const node = event.target.closest && event.target.closest(".c2c-call");
    if (!node) return;
    event.preventDefault();
    call(phoneOf(node));
  });
  document.addEventListener("keydown", (event) => {
    const node = event.target.closest && event.target.closest('.c2c-call[role="button"]');
    if (!node || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    call(phoneOf(node));
  });
  const start = () => {
    scan(document.body);
    new MutationObserver((changes) => changes.forEach((c) => c.addedNodes.forEach(scan)))
      .observe(document.body, {childList: true, subtree: true});
  };
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
  window.c2cWidget = {call, hangUp};
})();
