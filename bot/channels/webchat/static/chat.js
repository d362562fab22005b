// Customer web chat. Every piece of text is inserted with textContent, never as
// HTML, so nothing a customer or the bot writes can run in the page.
(function () {
  "use strict";
  var KEY = "kefu.session";
  var list = document.getElementById("messages");
  var form = document.getElementById("composer");
  var input = document.getElementById("input");
  var button = document.getElementById("send");
  var status = document.getElementById("status");
  var composing = false;

  function newSession() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes); // works on plain http too, unlike randomUUID
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += ("0" + bytes[i].toString(16)).slice(-2);
    return s;
  }

  function session() {
    var s = null;
    try { s = localStorage.getItem(KEY); } catch (e) { /* private mode */ }
    if (!s || !/^[A-Za-z0-9_-]{22,64}$/.test(s)) {
      s = newSession();
      try { localStorage.setItem(KEY, s); } catch (e) { /* keeps working for this page */ }
    }
    return s;
  }
  var sid = session();

  function add(direction, text) {
    var item = document.createElement("li");
    item.className = "msg msg--" + direction;
    item.textContent = text;
    list.appendChild(item);
    list.scrollTop = list.scrollHeight;
    return item;
  }

  function say(text) { status.textContent = text || ""; }

  function loadHistory() {
    fetch("/webchat/api/history?session=" + encodeURIComponent(sid))
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r); })
      .then(function (body) {
        body.messages.forEach(function (m) { add(m.direction, m.text); });
        if (!body.messages.length) add("out", "你好～有什么可以帮你的？");
      })
      .catch(function () { say("历史消息暂时没加载出来，刷新试试。"); });
  }

  function send(text) {
    var mine = add("in", text);
    mine.classList.add("msg--pending");
    button.disabled = true;
    say("");
    return fetch("/webchat/api/messages", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session: sid, text: text })
    })
      .then(function (r) {
        return r.json().then(function (body) { return { ok: r.ok, body: body }; });
      })
      .then(function (res) {
        mine.classList.remove("msg--pending");
        if (!res.ok) {
          mine.classList.add("msg--failed");
          say(res.body && res.body.message ? res.body.message : "发送失败，请稍后再试。");
          return;
        }
        res.body.replies.forEach(function (reply) { if (reply.text) add("out", reply.text); });
      })
      .catch(function () {
        mine.classList.remove("msg--pending");
        mine.classList.add("msg--failed");
        say("网络好像断了，消息没发出去，请稍后再试。");
      })
      .then(function () { button.disabled = false; input.focus(); });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || button.disabled) return;
    input.value = "";
    send(text);
  });
  // Enter sends, Shift+Enter breaks the line; Enter that confirms a Chinese IME
  // candidate must not send.
  input.addEventListener("compositionstart", function () { composing = true; });
  input.addEventListener("compositionend", function () { composing = false; });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !composing && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit"));
    }
  });
  loadHistory();
  input.focus();
})();
