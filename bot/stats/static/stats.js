// KPI page: figures from GET /api/stats, charts drawn on canvas (no external library).
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var COLORS = ["#1664ff", "#00b42a", "#ff7d00", "#f53f3f", "#722ed1", "#14c9c9", "#f7ba1e", "#86909c", "#eb2f96"];
  var REASONS = { request_human: "客户要求", low_confidence: "没听懂", complaint: "投诉", abuse: "辱骂",
    sensitive_topic: "敏感话题", payment_issue: "支付", account_issue: "账号", order_id_invalid: "订单号无效", order_change: "改单" };

  var el = Kefu.el;
  var api = Kefu.api;
  function pct(x) { return x === null || x === undefined ? "—" : (x * 100).toFixed(1) + "%"; }
  function secs(x) { return x === null || x === undefined ? "—" : (x < 10 ? x.toFixed(2) : Math.round(x)) + " 秒"; }
  function num(x) { return x === null || x === undefined ? "—" : String(x); }

  $("range").addEventListener("submit", function (e) { e.preventDefault(); load(); });

  function load() {
    var q = new URLSearchParams();
    if ($("from").value) q.set("from", $("from").value);
    if ($("to").value) q.set("to", $("to").value);
    api("GET", "/api/stats?" + q.toString()).then(render).catch(function (e) { $("status").textContent = e.message; });
  }

  function render(body) {
    $("status").textContent = "";
    $("from").value = body.from; $("to").value = body.to;
    var t = body.total;
    var cards = [
      ["会话", num(t.conversations)], ["消息（收/发）", t.messages_in + " / " + t.messages_out],
      ["自动化率", pct(t.automation_rate)], ["转人工率", pct(t.escalation_rate)],
      ["没听懂的比例", pct(t.fallback_rate)],
      ["机器人响应 中位/P90", secs(t.bot_response_p50) + " / " + secs(t.bot_response_p90)],
      ["人工首次回复 中位/P90", secs(t.human_response_p50) + " / " + secs(t.human_response_p90)],
      ["排队时长 中位", secs(t.queue_wait_p50)], ["处理时长 中位", secs(t.handling_p50)],
      ["满意度", t.csat_average === null ? "—" : t.csat_average.toFixed(2) + "（" + t.csat_count + " 条）"]
    ];
    var box = $("cards"); box.replaceChildren();
    cards.forEach(function (c) {
      var card = el("div", "card");
      card.appendChild(el("div", "card__label", c[0]));
      card.appendChild(el("div", "card__value", c[1]));
      box.appendChild(card);
    });
    var labels = body.days.map(function (d) { return d.date.slice(5); });
    bars($("chart-conversations"), labels, [{ name: "会话", values: body.days.map(function (d) { return d.conversations; }) }],
      { name: "自动化率", values: body.days.map(function (d) { return d.automation_rate; }) });
    var reasons = Object.keys(t.escalations_by_reason);
    bars($("chart-escalations"), labels, reasons.map(function (r) {
      return { name: REASONS[r] || r, values: body.days.map(function (d) { return d.escalations_by_reason[r] || 0; }) };
    }), null, true);
    lines($("chart-response"), labels, [
      { name: "机器人", values: body.days.map(function (d) { return d.bot_response_p50; }) },
      { name: "人工首次回复", values: body.days.map(function (d) { return d.human_response_p50; }) },
      { name: "排队", values: body.days.map(function (d) { return d.queue_wait_p50; }) }
    ]);
    table($("reasons"), ["原因", "次数"], reasons.map(function (r) { return [REASONS[r] || r, t.escalations_by_reason[r]]; }));
    table($("intents"), ["意图", "条数"], t.top_intents.map(function (i) { return [i.intent, i.count]; }));
    table($("unrecognized"), ["客户原话", "次数"], t.unrecognized.map(function (u) { return [u.text, u.count]; }));
    table($("days"), ["日期", "会话", "自动化率", "转人工", "没听懂", "满意度"], body.days.slice().reverse().map(function (d) {
      return [d.date, d.conversations, pct(d.automation_rate), d.escalations, pct(d.fallback_rate),
        d.csat_average === null ? "—" : d.csat_average.toFixed(2)];
    }));
  }

  function table(node, head, rows) {
    node.replaceChildren();
    var tr = el("tr");
    head.forEach(function (h, i) { tr.appendChild(el("th", i ? "num" : "", h)); });
    node.appendChild(tr);
    rows.forEach(function (r) {
      var row = el("tr");
      r.forEach(function (c, i) { row.appendChild(el("td", i ? "num" : "", c)); });
      node.appendChild(row);
    });
    if (!rows.length) { var empty = el("tr"); empty.appendChild(el("td", "", "暂无数据")); node.appendChild(empty); }
  }

  function frame(canvas) {
    var ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.font = "11px sans-serif";
    return { ctx: ctx, left: 36, right: canvas.width - 36, top: 22, bottom: canvas.height - 22 };
  }
  function axis(f, labels, max, unit) {
    var ctx = f.ctx;
    ctx.strokeStyle = "#e5e6eb"; ctx.fillStyle = "#86909c";
    for (var i = 0; i <= 4; i++) {
      var y = f.bottom - (f.bottom - f.top) * i / 4;
      ctx.beginPath(); ctx.moveTo(f.left, y); ctx.lineTo(f.right, y); ctx.stroke();
      ctx.fillText(String(Math.round(max * i / 4 * 100) / 100) + (unit || ""), 2, y + 4);
    }
    var step = Math.max(1, Math.ceil(labels.length / 10));
    labels.forEach(function (l, i) {
      if (i % step) return;
      ctx.fillText(l, f.left + (f.right - f.left) * (i + 0.5) / labels.length - 12, f.bottom + 14);
    });
  }
  function legend(f, series) {
    var x = f.left;
    series.forEach(function (s, i) {
      f.ctx.fillStyle = COLORS[i % COLORS.length]; f.ctx.fillRect(x, 4, 10, 10);
      f.ctx.fillStyle = "#1f2329"; f.ctx.fillText(s.name, x + 14, 13);
      x += 24 + f.ctx.measureText(s.name).width;
    });
  }
  function bars(canvas, labels, series, rate, stacked) {
    var f = frame(canvas), ctx = f.ctx;
    var totals = labels.map(function (_, i) {
      return stacked ? series.reduce(function (a, s) { return a + (s.values[i] || 0); }, 0)
        : Math.max.apply(null, series.map(function (s) { return s.values[i] || 0; }).concat([0]));
    });
    var max = Math.max(1, Math.max.apply(null, totals.concat([0])));
    axis(f, labels, max);
    var width = (f.right - f.left) / labels.length;
    labels.forEach(function (_, i) {
      var base = f.bottom;
      series.forEach(function (s, k) {
        var h = (f.bottom - f.top) * (s.values[i] || 0) / max;
        var w = stacked ? width * 0.7 : width * 0.7 / series.length;
        var x = f.left + width * i + width * 0.15 + (stacked ? 0 : w * k);
        ctx.fillStyle = COLORS[k % COLORS.length];
        ctx.fillRect(x, (stacked ? base : f.bottom) - h, w, h);
        if (stacked) base -= h;
      });
    });
    var all = series.slice();
    if (rate) {
      all.push(rate);
      ctx.strokeStyle = COLORS[series.length % COLORS.length]; ctx.lineWidth = 2; ctx.beginPath();
      var started = false;
      rate.values.forEach(function (v, i) {
        if (v === null || v === undefined) return;
        var x = f.left + width * (i + 0.5), y = f.bottom - (f.bottom - f.top) * v;
        if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
        ctx.fillStyle = ctx.strokeStyle; ctx.fillRect(x - 2, y - 2, 4, 4);
      });
      ctx.stroke(); ctx.lineWidth = 1;
      ctx.fillStyle = "#86909c"; ctx.fillText("100%", f.right + 4, f.top + 4);
    }
    legend(f, all);
  }
  function lines(canvas, labels, series) {
    var f = frame(canvas), ctx = f.ctx;
    var values = [].concat.apply([], series.map(function (s) { return s.values.filter(function (v) { return v !== null; }); }));
    var max = Math.max(1, Math.max.apply(null, values.concat([0])));
    axis(f, labels, max, "s");
    var width = (f.right - f.left) / labels.length;
    series.forEach(function (s, k) {
      ctx.strokeStyle = ctx.fillStyle = COLORS[k % COLORS.length]; ctx.lineWidth = 2; ctx.beginPath();
      var started = false;
      s.values.forEach(function (v, i) {
        if (v === null || v === undefined) return;
        var x = f.left + width * (i + 0.5), y = f.bottom - (f.bottom - f.top) * v / max;
        if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
        ctx.fillRect(x - 2, y - 2, 4, 4);
      });
      ctx.stroke(); ctx.lineWidth = 1;
    });
    legend(f, series);
  }

  Kefu.start({
    title: "数据看板", roles: ["trainer", "admin"], refused: "数据看板需要 trainer 或 admin 账号。",
    onStart: load
  });
})();
