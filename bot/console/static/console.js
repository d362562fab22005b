// Support agents' console. Every piece of text from customers, the bot or other
// agents is inserted with textContent, never as HTML, so nothing in a message
// can run in the page. State changes carry the session's CSRF token.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var me = null;            // {username, role, csrf}
  var current = null;       // the open conversation id
  var view = null;          // its last loaded view
  var socket = null;
  var retry = 1000;
  var refreshTimer = null;
  var announced = {};       // conversation -> time it was re-announced
  var REASONS = {
    request_human: "客户要求人工", low_confidence: "机器人没听懂", complaint: "投诉",
    abuse: "辱骂", sensitive_topic: "敏感话题", payment_issue: "支付问题",
    account_issue: "账号问题", order_id_invalid: "订单号无法识别", order_change: "改单/取消"
  };
  var STATES = { bot: "机器人接待", waiting: "排队中", assigned: "人工接待中", closed: "已结束" };
  var CHANNELS = { rest: "REST", webchat: "网页", wechat: "微信公众号", weibo: "微博私信" };
  var PRESENCE = { online: "在线", away: "离开", offline: "离线" };
  var alerted = {};         // conversation -> already notified of (one alert each)
  var autoAssign = false;   // on: assignments alert the agent given one, not the queue

  var el = Kefu.el;
  var api = Kefu.api;

  function status(text) { $("status").textContent = text || ""; }

  function minutes(seconds) {
    if (seconds < 60) return Math.max(0, Math.round(seconds)) + " 秒";
    if (seconds < 3600) return Math.floor(seconds / 60) + " 分钟";
    return Math.floor(seconds / 3600) + " 小时 " + Math.floor((seconds % 3600) / 60) + " 分";
  }

  function clock(ts) {
    var d = new Date(ts * 1000);
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }

  // ---- sign-in (kefu.js) --------------------------------------------------------
  function onSignedOut() {
    me = null;
    if (socket) { socket.onclose = null; socket.close(); socket = null; }
  }

  function start(session) {
    me = session;
    $("canned-editor").hidden = me.role !== "admin";
    $("people-link").hidden = me.role !== "admin";
    connect();
    refreshLists();
    loadCanned();
    loadAgents();
    loadTeam();
    // Asked once; the browser remembers the answer.
    if (window.Notification && Notification.permission === "default") Notification.requestPermission();
  }

  // ---- presence and the team -------------------------------------------------
  function loadTeam() {
    api("GET", "/console/api/team").then(function (body) {
      var list = $("team");
      list.replaceChildren();
      autoAssign = body.auto_assign;
      $("team-mode").textContent = autoAssign ? "自动分配" : "手动接入";
      body.members.forEach(function (m) {
        var li = el("li", "member");
        li.dataset.agent = m.agent;
        li.dataset.status = m.status;
        li.appendChild(el("span", "presence presence--" + m.status));
        li.appendChild(el("span", "member__name", m.agent));
        li.appendChild(el("span", "tag member__status", PRESENCE[m.status] || m.status));
        li.appendChild(el("span", "tag member__load", m.load + "/" + m.capacity));
        if (m.teams.length) li.appendChild(el("span", "hint", m.teams.join("、")));
        // Admins: which conversations each holds (the stats page has their figures).
        if (m.holding) li.title = m.holding.length ? "接待中：" + m.holding.join("、") : "暂无接待中的会话";
        list.appendChild(li);
        if (m.agent === me.username) $("presence").value = m.status;
      });
    }).catch(function (e) { status(e.message); });
  }

  $("presence").addEventListener("change", function () {
    api("PUT", "/console/api/presence", { status: $("presence").value })
      .then(loadTeam).catch(function (e) { status(e.message); });
  });

  // A short two-tone chime, made here: no sound file to fetch.
  function chime() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    try {
      var ctx = new Ctx();
      [880, 660].forEach(function (hz, i) {
        var osc = ctx.createOscillator(), gain = ctx.createGain();
        osc.frequency.value = hz;
        gain.gain.value = 0.1;
        osc.connect(gain); gain.connect(ctx.destination);
        osc.start(ctx.currentTime + i * 0.18); osc.stop(ctx.currentTime + i * 0.18 + 0.15);
      });
    } catch (e) { /* no audio device: the notification alone */ }
  }

  // One notification (with sound) per conversation and cause.
  function alertOnce(key, title, body) {
    if (alerted[key]) return;
    alerted[key] = true;
    chime();
    if (window.Notification && Notification.permission === "granted") {
      try { new Notification(title, { body: body, tag: key }); } catch (e) { /* page-only */ }
    }
  }

  // ---- live events -----------------------------------------------------------
  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/console/ws");
    socket.onopen = function () {
      retry = 1000;
      $("live").textContent = "实时";
      $("live").className = "live live--on";
      refreshLists();
      if (current) openConversation(current);
    };
    socket.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      onEvent(event);
    };
    socket.onclose = function () {
      $("live").textContent = "未连接，重连中…";
      $("live").className = "live live--off";
      if (!me) return;
      setTimeout(function () { if (me) connect(); }, retry);
      retry = Math.min(retry * 2, 15000);
    };
  }

  function onEvent(event) {
    if (event.type === "reannounce") {
      announced[event.conversation] = Date.now();
      document.title = "（有客户久等）客服工作台";
      alertOnce("wait:" + event.conversation, "有客户久等", event.conversation);
    }
    if (event.type === "presence") loadTeam();
    if (event.type === "state") {
      if (event.state === "assigned" && me && event.agent === me.username) {
        alertOnce("assigned:" + event.conversation + ":" + Date.now(), "新会话分配给你", event.conversation);
      }
      loadTeam();  // loads changed
    }
    // Without automatic assignment every agent hears of a new customer waiting;
    // with it, the agent given the conversation does (and all, if it waits long).
    if (event.type === "escalated" && event.queued && !autoAssign) {
      alertOnce("waiting:" + event.conversation + ":" + event.at, "有客户在排队", event.conversation);
    }
    scheduleRefresh();
    if (event.conversation && event.conversation === current) openConversation(current);
  }

  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () { refreshTimer = null; refreshLists(); }, 150);
  }

  // ---- queue and own conversations -------------------------------------------
  function item(conversation, tags, text, onOpen) {
    var li = el("li", "item");
    li.tabIndex = 0;
    li.dataset.conversation = conversation;
    if (conversation === current) li.classList.add("item--active");
    var top = el("div", "item__top");
    top.appendChild(el("span", "item__id", conversation));
    tags.forEach(function (t) { top.appendChild(t); });
    li.appendChild(top);
    li.appendChild(el("div", "item__text", text || ""));
    li.addEventListener("click", onOpen);
    li.addEventListener("keydown", function (e) { if (e.key === "Enter") onOpen(); });
    return li;
  }

  function reasonTag(reason) {
    return el("span", "tag" + (reason === "complaint" ? " tag--complaint" : ""), REASONS[reason] || reason);
  }

  // The first-response timer: green, amber from half the target, red past it.
  function slaTag(row) {
    var tag = el("span", "tag sla");
    tag.dataset.start = row.queued_at;
    tag.dataset.target = row.target;
    tag.dataset.done = row.answered_at || 0;
    paintSla(tag);
    return tag;
  }

  function paintSla(tag) {
    var start = +tag.dataset.start, target = +tag.dataset.target, done = +tag.dataset.done;
    var elapsed = (done || Date.now() / 1000) - start;
    var level = elapsed >= target ? "red" : elapsed >= target / 2 ? "amber" : "ok";
    tag.className = "tag sla sla--" + level;
    tag.textContent = (done ? "已回复 " : "首次回复 ") + minutes(elapsed);
    tag.title = "目标 " + minutes(target);
  }

  setInterval(function () {
    Array.prototype.forEach.call(document.querySelectorAll(".sla"), paintSla);
  }, 1000);

  function refreshLists() {
    if (!me) return;
    api("GET", "/console/api/queue").then(function (body) {
      var list = $("queue");
      list.replaceChildren();
      body.waiting.forEach(function (row) {
        var li = item(row.conversation, [reasonTag(row.reason), slaTag(row)],
          row.last_text, function () { openConversation(row.conversation); });
        if (row.priority === 0) li.classList.add("item--urgent");
        if (announced[row.conversation] && Date.now() - announced[row.conversation] < 10000) li.classList.add("item--announced");
        list.appendChild(li);
      });
      $("queue-count").textContent = body.waiting.length;
      if (!body.waiting.length) document.title = "客服工作台";
    }).catch(function (e) { status(e.message); });
    api("GET", "/console/api/assigned").then(function (body) {
      var list = $("mine");
      list.replaceChildren();
      body.assigned.forEach(function (row) {
        var tags = [reasonTag(row.reason), slaTag(row)];
        if (row.agent !== me.username) tags.push(el("span", "tag", row.agent));
        list.appendChild(item(row.conversation, tags, row.last_text,
          function () { openConversation(row.conversation); }));
      });
      $("mine-count").textContent = body.assigned.length;
    }).catch(function (e) { status(e.message); });
  }

  // ---- one conversation ------------------------------------------------------
  function who(entry) {
    if (entry.direction === "in") return { cls: "customer", name: "客户" };
    if (entry.action && entry.action.indexOf("agent:") === 0) return { cls: "agent", name: "客服 " + entry.action.slice(6) };
    return { cls: "bot", name: "机器人" };
  }

  function renderMessage(entry) {
    var w = who(entry);
    var li = el("li", "msg msg--" + w.cls);
    li.dataset.id = entry.id;
    var head = el("div", "msg__who");
    head.appendChild(el("span", "", w.name + " " + clock(entry.ts)));
    // Every entry names the channel it came through (always the conversation's own).
    if (entry.channel) head.appendChild(el("span", "msg__channel", CHANNELS[entry.channel] || entry.channel));
    if (entry.direction === "in" && entry.intent) {
      var confidence = typeof entry.confidence === "number" ? entry.confidence : 0;
      var low = confidence < 0.5 || entry.intent === "nlu_fallback";
      var badge = el("span", "intent" + (low ? " intent--low" : ""),
        entry.intent + " " + confidence.toFixed(2));
      badge.title = "机器人识别的意图和置信度";
      head.appendChild(badge);
    }
    li.appendChild(head);
    li.appendChild(el("div", "msg__text", entry.text));
    return li;
  }

  function openConversation(conversation) {
    var opening = conversation !== current;
    current = conversation;
    Array.prototype.forEach.call(document.querySelectorAll(".item"), function (li) {
      li.classList.toggle("item--active", li.dataset.conversation === conversation);
    });
    return api("GET", "/console/api/conversations/" + encodeURIComponent(conversation)).then(function (body) {
      if (current !== conversation) return;
      view = body;
      $("empty").hidden = true;
      $("conversation").hidden = false;
      $("conv-title").textContent = body.conversation;
      var meta = "渠道：" + (CHANNELS[body.channel] || body.channel || "未知") + " · 状态：" + (STATES[body.state] || body.state);
      // The campaign (a QR code's scene) that brought the customer, when there was one.
      if (body.source) meta += " · 来源：" + body.source;
      if (body.agent) meta += " · 接待：" + body.agent;
      if (body.reason) meta += " · 转人工原因：" + (REASONS[body.reason] || body.reason);
      if (body.push_window) meta += " · " + body.push_window;
      $("conv-meta").textContent = meta;
      var mine = body.state === "assigned" && (body.agent === me.username || me.role === "admin");
      $("claim").hidden = body.state !== "waiting";
      $("release").hidden = $("close").hidden = $("close-tag").hidden = !mine;
      $("transfer").hidden = $("transfer-to").hidden = !mine;
      var canReply = body.state === "assigned" && body.agent === me.username;
      $("reply-text").disabled = $("reply-send").disabled = $("canned").disabled = !canReply;
      $("reply-text").placeholder = canReply ? "回复客户（回车发送，Shift+回车换行）" : "接入后才能回复";
      var warning = body.can_push ? "" : (body.push_note || "这个渠道现在不能主动推送消息。");
      $("conv-warning").textContent = warning;
      $("conv-warning").hidden = !warning;
      var list = $("transcript");
      var atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      list.replaceChildren();
      body.messages.forEach(function (m) { list.appendChild(renderMessage(m)); });
      if (opening || atBottom) list.scrollTop = list.scrollHeight;
      var notes = $("notes");
      notes.replaceChildren();
      body.notes.forEach(function (n) { notes.appendChild(el("li", "", n.author + "：" + n.text)); });
      status("");
    }).catch(function (e) { status(e.message); });
  }

  function act(action, body) {
    if (!current) return;
    var conversation = current;
    api("POST", "/console/api/conversations/" + encodeURIComponent(conversation) + "/" + action, body || {})
      .then(function () { refreshLists(); return openConversation(conversation); })
      .catch(function (e) { status(e.status === 409 ? "操作没有生效：" + e.message : e.message); refreshLists(); });
  }

  $("claim").addEventListener("click", function () { act("claim"); });
  $("release").addEventListener("click", function () { act("release"); });
  $("transfer").addEventListener("click", function () {
    if ($("transfer-to").value) act("transfer", { to: $("transfer-to").value });
  });
  $("close").addEventListener("click", function () {
    var tag = $("close-tag").value.trim();
    if (!tag) { status("请先填写结束标签，例如“已解决”。"); $("close-tag").focus(); return; }
    act("close", { tag: tag });
  });

  $("reply-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = $("reply-text").value.trim();
    if (!text || !current) return;
    var conversation = current;
    $("reply-send").disabled = true;
    api("POST", "/console/api/conversations/" + encodeURIComponent(conversation) + "/reply", { text: text })
      .then(function (body) {
        $("reply-text").value = "";
        if (!body.pushed) status(body.message || "回复已记录，但没能推送给客户。");
        return openConversation(conversation);
      })
      .catch(function (e) { status(e.message); })
      .then(function () { $("reply-send").disabled = false; $("reply-text").focus(); });
  });
  $("reply-text").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      $("reply-form").requestSubmit();
    }
  });

  $("note-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = $("note-text").value.trim();
    if (!text || !current) return;
    var conversation = current;
    api("POST", "/console/api/conversations/" + encodeURIComponent(conversation) + "/notes", { text: text })
      .then(function () { $("note-text").value = ""; return openConversation(conversation); })
      .catch(function (e) { status(e.message); });
  });

  // ---- canned replies and agents ----------------------------------------------
  function loadCanned() {
    api("GET", "/console/api/canned").then(function (body) {
      var select = $("canned");
      select.replaceChildren(el("option", "", "快捷回复…"));
      select.firstChild.value = "";
      body.replies.forEach(function (text) {
        var option = el("option", "", text.length > 24 ? text.slice(0, 24) + "…" : text);
        option.value = text;
        select.appendChild(option);
      });
      $("canned-text").value = body.replies.join("\n");
    }).catch(function (e) { status(e.message); });
  }

  $("canned").addEventListener("change", function () {
    if (!this.value) return;
    $("reply-text").value = this.value;
    this.value = "";
    $("reply-text").focus();
  });

  $("canned-save").addEventListener("click", function () {
    var replies = $("canned-text").value.split("\n").map(function (s) { return s.trim(); })
      .filter(function (s) { return s; });
    api("PUT", "/console/api/canned", { replies: replies })
      .then(function () { $("canned-status").textContent = "已保存"; loadCanned(); })
      .catch(function (e) { $("canned-status").textContent = e.message; });
  });

  function loadAgents() {
    api("GET", "/console/api/agents").then(function (body) {
      var select = $("transfer-to");
      select.replaceChildren();
      body.agents.forEach(function (a) {
        if (a.username === me.username) return;
        var option = el("option", "", a.username);
        option.value = a.username;
        select.appendChild(option);
      });
    }).catch(function (e) { status(e.message); });
  }

  // Waiting times tick on their own between events.
  setInterval(function () { if (me && !document.hidden) refreshLists(); }, 15000);

  Kefu.start({
    title: "客服工作台", roles: ["agent", "admin"], refused: "工作台需要 agent 或 admin 账号。",
    onStart: start, onSignedOut: onSignedOut
  });
})();
