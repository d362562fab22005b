// Customer web chat. Every piece of text is inserted with textContent, never as
// HTML, so nothing a customer or the bot writes can run in the page.
(function () {
  "use strict";
  var list = document.getElementById("messages");
  var form = document.getElementById("composer");
  var input = document.getElementById("input");
  var button = document.getElementById("send");
  var status = document.getElementById("status");
  var composing = false;

  // The session lives in an HttpOnly cookie the server sets; this page never sees it.
  // Each message gets its own id, sent again on a retry, so the bot answers it once.
  function newMessageId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes); // works on plain http too, unlike randomUUID
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += ("0" + bytes[i].toString(16)).slice(-2);
    return s;
  }

  var handoff = document.getElementById("handoff");
  var shown = {};  // ids of logged messages on screen: a pushed one is never shown twice
  var retry = 1000;

  function add(direction, text, from, id) {
    if (id && shown[id]) return null;
    if (id) shown[id] = true;
    var item = document.createElement("li");
    item.className = "msg msg--" + direction + (from === "agent" ? " msg--agent" : "");
    if (from === "agent") {
      var label = document.createElement("span");
      label.className = "msg__from";
      label.textContent = "人工客服";
      item.appendChild(label);
    }
    item.appendChild(document.createTextNode(text));
    list.appendChild(item);
    list.scrollTop = list.scrollHeight;
    return item;
  }

  function say(text) { status.textContent = text || ""; }

  // Quick replies under a question ("你是想…，还是…？"): a click sends the button's
  // label as the customer's text, exactly as if typed; the server knows which
  // question it answers. Buttons of an earlier question are removed.
  function addChoices(buttons) {
    Array.prototype.forEach.call(document.querySelectorAll(".choices"), function (old) { old.remove(); });
    if (!buttons || !buttons.length) return;
    var row = document.createElement("li");
    row.className = "choices";
    buttons.forEach(function (b) {
      var choice = document.createElement("button");
      choice.type = "button";
      choice.className = "choice";
      choice.textContent = b.title;
      choice.addEventListener("click", function () {
        if (button.disabled) return;
        row.remove();
        send(b.title);
      });
      row.appendChild(choice);
    });
    list.appendChild(row);
    list.scrollTop = list.scrollHeight;
  }

  // Who answers now, said plainly: the bot, the queue, or a person.
  function showState(state) {
    var text = state === "waiting" ? "已为你转人工，正在排队，客服同事接入后会在这里回复。"
      : state === "assigned" ? "人工客服接待中" : "";
    handoff.textContent = text;
    handoff.hidden = !text;
  }

  function loadHistory() {
    return fetch("/webchat/api/history", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r); })
      .then(function (body) {
        list.replaceChildren();
        shown = {};
        body.messages.forEach(function (m) { add(m.direction, m.text, m.from, m.id); });
        if (!body.messages.length) add("out", "你好～有什么可以帮你的？");
        showState(body.state);
      })
      .catch(function () { say("历史消息暂时没加载出来，刷新试试。"); });
  }

  // Replies nobody asked for this moment (a person's, a notice) arrive over a socket.
  function listen() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/webchat/ws");
    var opened = false;
    socket.onopen = function () {
      if (retry > 1000) loadHistory();  // catch up on what came while disconnected
      opened = true;
      retry = 1000;
    };
    socket.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (event.type !== "message") return;
      add("out", event.text, event.from, event.id);
      if (event.state) showState(event.state);
      else if (event.from === "agent") showState("assigned");
    };
    socket.onclose = function () {
      if (!opened && retry === 1000) retry = 2000;
      setTimeout(listen, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  // One message, retried with the same id while the network or the server fails:
  // a retry of a message that did arrive gets the first answer, never a second one.
  var RETRIES = [1000, 2000, 4000];

  function post(payload, attempt) {
    return fetch("/webchat/api/messages", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload)
    })
      .then(function (r) {
        return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; });
      })
      .then(function (res) {
        if (res.status >= 500 && attempt < RETRIES.length) return later(payload, attempt);
        return res;
      }, function (error) {
        if (attempt < RETRIES.length) return later(payload, attempt);
        throw error;
      });
  }

  function later(payload, attempt) {
    say("网络不太稳，正在重新发送…");
    return new Promise(function (resolve) { setTimeout(resolve, RETRIES[attempt]); })
      .then(function () { return post(payload, attempt + 1); });
  }

  function send(text) {
    addChoices(null);
    var mine = add("in", text);
    mine.classList.add("msg--pending");
    button.disabled = true;
    say("");
    return post({ text: text, message_id: newMessageId() }, 0)
      .then(function (res) {
        mine.classList.remove("msg--pending");
        if (!res.ok) {
          mine.classList.add("msg--failed");
          say(res.body && res.body.message ? res.body.message : "发送失败，请稍后再试。");
          return;
        }
        say("");
        if (res.body.id) shown[res.body.id] = true;
        res.body.replies.forEach(function (reply) {
          if (reply.text) add("out", reply.text);
          if (reply.buttons && reply.buttons.length) addChoices(reply.buttons);
        });
        showState(res.body.state);
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
  loadHistory().then(listen);
  input.focus();
})();
