// Trainers' review page. All text from customers is inserted with textContent.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var me = null, meta = null, tab = "queue", poll = null;

  var el = Kefu.el;
  var api = Kefu.api;
  function status(text) { $("status").textContent = text || ""; }
  function when(ts) { return new Date(ts * 1000).toLocaleString("zh-CN", { hour12: false }); }

  function start(session) {
    me = session;
    $("retrain").hidden = $("reload").hidden = me.role !== "admin";
    if (meta) return show("queue");
    api("GET", "/review/api/meta").then(function (m) {
      meta = m;
      m.intents.forEach(function (name) {
        var o = el("option", "", name); o.value = name; $("f-intent").appendChild(o);
      });
      m.reasons.forEach(function (name) {
        var o = el("option", "", name); o.value = name; $("f-reason").appendChild(o);
      });
      show("queue");
    }).catch(function (e) { status(e.message); });
  }

  // ---- tabs ------------------------------------------------------------------
  function show(name) {
    tab = name;
    Array.prototype.forEach.call(document.querySelectorAll(".tab"), function (b) {
      b.classList.toggle("tab--on", b.dataset.tab === name);
    });
    var conv = name === "conversations";
    $("filters").hidden = name === "feedback" || name === "model";
    $("f-q").hidden = $("f-intent").hidden = conv;
    $("f-reason").hidden = $("f-low-wrap").hidden = !conv;
    $("model").hidden = name !== "model";
    $("results").replaceChildren();
    $("count").textContent = "";
    if (poll) { clearInterval(poll); poll = null; }
    if (name === "feedback") loadFeedback();
    else if (name === "model") { loadRetrain(); poll = setInterval(loadRetrain, 2000); }
    else search();
  }
  Array.prototype.forEach.call(document.querySelectorAll(".tab"), function (b) {
    b.addEventListener("click", function () { show(b.dataset.tab); });
  });
  $("filters").addEventListener("submit", function (e) { e.preventDefault(); search(); });

  function params() {
    var p = new URLSearchParams();
    if (tab === "queue") p.set("queue", "1");
    if (tab !== "conversations") {
      if ($("f-q").value.trim()) p.set("q", $("f-q").value.trim());
      if ($("f-intent").value) p.set("intent", $("f-intent").value);
    } else {
      if ($("f-reason").value) p.set("escalated", $("f-reason").value);
      if ($("f-low").checked) p.set("rated_low", "1");
    }
    if ($("f-channel").value) p.set("channel", $("f-channel").value);
    if ($("f-from").value) p.set("from", $("f-from").value);
    if ($("f-to").value) p.set("to", $("f-to").value);
    return p.toString();
  }

  function search() {
    if (tab === "conversations") {
      if (!$("f-reason").value && !$("f-low").checked) { $("count").textContent = "选一个转人工原因，或勾选低评分。"; return; }
      return api("GET", "/review/api/conversations?" + params()).then(function (body) {
        $("count").textContent = "共 " + body.total + " 个会话";
        var list = $("results"); list.replaceChildren();
        body.conversations.forEach(function (c) {
          var li = el("li", "row");
          li.appendChild(el("div", "row__text", c.last_customer_text || c.last_text));
          var m = el("div", "row__meta");
          m.appendChild(el("span", "", c.id));
          m.appendChild(el("span", "tag", c.channel));
          m.appendChild(el("span", "", when(c.last_activity)));
          li.appendChild(m);
          li.addEventListener("click", function () { openConversation(c.id); });
          list.appendChild(li);
        });
      }).catch(function (e) { status(e.message); });
    }
    return api("GET", "/review/api/messages?" + params()).then(function (body) {
      $("count").textContent = "共 " + body.total + " 条消息";
      var list = $("results"); list.replaceChildren();
      body.messages.forEach(function (m) { list.appendChild(messageRow(m, true)); });
    }).catch(function (e) { status(e.message); });
  }

  // ---- one message: what the bot understood, and the trainer's label ------------
  function messageRow(m, withLink) {
    var li = el("li", "row");
    li.dataset.ref = m.ref || (m.conversation + "|" + m.id);
    li.appendChild(el("div", "row__text", m.text));
    var info = el("div", "row__meta");
    var conf = typeof m.confidence === "number" ? m.confidence.toFixed(2) : "—";
    info.appendChild(el("span", "intent" + ((m.confidence || 0) < 0.6 ? " intent--low" : ""), (m.intent || "无意图") + " " + conf));
    (m.entities || []).forEach(function (e) { info.appendChild(el("span", "tag ent", e.entity + "=" + e.value)); });
    if (m.channel) info.appendChild(el("span", "tag", m.channel));
    info.appendChild(el("span", "", when(m.ts)));
    if (withLink) {
      var link = el("a", "", "看整段对话"); link.href = "#";
      link.addEventListener("click", function (e) { e.preventDefault(); openConversation(m.conversation); });
      info.appendChild(link);
    }
    li.appendChild(info);
    li.appendChild(labelControls(m));
    return li;
  }

  function labelControls(m) {
    var box = el("div", "row__actions");
    if (m.label) {
      box.appendChild(el("span", "done", m.label.ignore ? "已忽略（" + m.label.by + "）"
        : "已标为 " + m.label.intent + "（" + m.label.by + (m.label.file ? "，" + m.label.file : "") + "）"));
      return box;
    }
    var select = el("select", "label-intent");
    select.setAttribute("aria-label", "正确的意图");
    var none = el("option", "", "选择正确的意图…"); none.value = "";
    select.appendChild(none);
    meta.intents.filter(function (n) { return n !== "nlu_fallback"; }).forEach(function (name) {
      var o = el("option", "", name); o.value = name;
      if (name === m.intent) o.selected = true;
      select.appendChild(o);
    });
    box.appendChild(select);
    var keep = (m.entities || []).map(function (e) {
      var label = el("label", "ent");
      var check = el("input"); check.type = "checkbox"; check.checked = true;
      label.appendChild(check);
      label.appendChild(document.createTextNode(" " + e.entity + "=" + e.value));
      box.appendChild(label);
      return { check: check, entity: e };
    });
    var save = el("button", "label-save", "保存标注"); save.type = "button";
    save.addEventListener("click", function () {
      if (!select.value) { status("先选择正确的意图。"); select.focus(); return; }
      var entities = keep.filter(function (k) { return k.check.checked; })
        .map(function (k) { return { entity: k.entity.entity, start: k.entity.start, end: k.entity.end }; });
      send({ conversation: m.conversation, id: m.id, intent: select.value, entities: entities }, box);
    });
    var ignore = el("button", "label-ignore", "忽略"); ignore.type = "button";
    ignore.addEventListener("click", function () { send({ conversation: m.conversation, id: m.id, ignore: true }, box); });
    box.appendChild(save);
    box.appendChild(ignore);
    return box;
  }

  function send(body, box) {
    api("POST", "/review/api/label", body).then(function (res) {
      box.replaceChildren(el("span", "done", res.label.ignore ? "已忽略" :
        "已写入 " + res.label.file + (res.label.line ? " 第 " + res.label.line + " 行" : "（已有这条例句）")));
      status("");
    }).catch(function (e) { status(e.message); });
  }

  function openConversation(id) {
    api("GET", "/review/api/conversations/" + encodeURIComponent(id)).then(function (body) {
      $("detail").hidden = false;
      $("detail-title").textContent = body.conversation;
      var bits = ["渠道：" + body.channel];
      if (body.escalations.length) bits.push("转人工：" + body.escalations.join("、"));
      if (body.satisfaction && body.satisfaction.rating) bits.push("评分：" + body.satisfaction.rating);
      $("detail-meta").textContent = bits.join(" · ");
      var list = $("detail-messages"); list.replaceChildren();
      body.messages.forEach(function (m) {
        if (m.direction === "in") {
          m.conversation = body.conversation;
          m.ref = body.conversation + "|" + m.id;
          list.appendChild(messageRow(m, false));
        } else {
          var agent = m.action && m.action.indexOf("agent:") === 0;
          var li = el("li", "msg " + (agent ? "msg--agent" : "msg--bot"));
          li.appendChild(el("div", "msg__who", (agent ? "客服 " + m.action.slice(6) : "机器人") + " " + when(m.ts)));
          li.appendChild(el("div", "msg__text", m.text));
          list.appendChild(li);
        }
      });
    }).catch(function (e) { status(e.message); });
  }

  function loadFeedback() {
    api("GET", "/review/api/feedback").then(function (body) {
      var names = { complaint: "投诉", praise: "表扬", suggestion: "建议" };
      $("count").textContent = "共 " + body.feedback.length + " 条";
      var list = $("results"); list.replaceChildren();
      body.feedback.forEach(function (f) {
        var li = el("li", "row");
        li.appendChild(el("div", "row__text", f.text));
        var m = el("div", "row__meta");
        m.appendChild(el("span", "tag", names[f.kind] || f.kind));
        m.appendChild(el("span", "", f.conversation));
        m.appendChild(el("span", "", when(parseFloat(f.ts))));
        li.appendChild(m);
        li.addEventListener("click", function () { openConversation(f.conversation); });
        list.appendChild(li);
      });
    }).catch(function (e) { status(e.message); });
  }

  function loadRetrain() {
    api("GET", "/review/api/retrain").then(function (job) {
      var names = { idle: "还没有训练过", running: "训练中…", promoted: "新模型已上线", refused: "新模型没有通过检查，继续用当前模型", failed: "训练失败" };
      var text = names[job.state] || job.state;
      if (job.gate) text += "：" + job.gate.reason;
      $("retrain-state").textContent = text;
      $("retrain-log").textContent = (job.log || []).join("\n");
      var hasSteps = typeof job.total === "number";
      $("retrain-progress").hidden = !hasSteps;
      if (hasSteps) {
        var percent = job.percent;
        $("retrain-bar").value = percent;
        $("retrain-step").textContent = "第 " + job.step + "/" + job.total + " 步（" + percent + "%）：" + (job.label || "");
      }
      $("retrain").disabled = job.state === "running";
    }).catch(function (e) { status(e.message); });
  }
  $("retrain").addEventListener("click", function () {
    api("POST", "/review/api/retrain", {}).then(loadRetrain).catch(function (e) { status(e.message); });
  });
  $("reload").addEventListener("click", function () {
    api("POST", "/review/api/reload", {}).then(function (r) { status(r.model + "：" + r.result); })
      .catch(function (e) { status(e.message); });
  });

  Kefu.start({
    title: "对话复核", roles: ["trainer", "admin"], refused: "复核需要 trainer 或 admin 账号。",
    onStart: start, onSignedOut: function () { me = null; if (poll) { clearInterval(poll); poll = null; } }
  });
})();
