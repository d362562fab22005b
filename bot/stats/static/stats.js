// KPI page: figures from GET /api/stats, charts drawn with the vendored Chart.js.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var COLORS = ["#1664ff", "#00b42a", "#ff7d00", "#f53f3f", "#722ed1", "#14c9c9", "#f7ba1e", "#86909c", "#eb2f96"];
  var REASONS = { request_human: "客户要求", low_confidence: "没听懂", complaint: "投诉", abuse: "辱骂",
    sensitive_topic: "敏感话题", payment_issue: "支付", account_issue: "账号", order_id_invalid: "订单号无效", order_change: "改单" };
  var CHANNELS = { rest: "REST 接口", webchat: "网页聊天", wechat: "微信公众号", weibo: "微博", wecomkf: "微信客服", other: "其他" };

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
    $("csv").href = "/api/stats.csv?" + q.toString();
    api("GET", "/api/stats?" + q.toString()).then(render).catch(function (e) { $("status").textContent = e.message; });
  }

  function render(body) {
    $("status").textContent = "";
    $("from").value = body.from; $("to").value = body.to;
    $("csv").href = "/api/stats.csv?from=" + body.from + "&to=" + body.to;
    var t = body.total;
    var cards = [
      ["会话", num(t.conversations)], ["消息（收/发）", t.messages_in + " / " + t.messages_out],
      ["自动化率", pct(t.automation_rate)], ["转人工率", pct(t.escalation_rate)],
      ["没听懂的比例", pct(t.fallback_rate)],
      ["机器人响应 中位/P90", secs(t.bot_response_p50) + " / " + secs(t.bot_response_p90)],
      ["人工首次回复 中位/P90", secs(t.human_response_p50) + " / " + secs(t.human_response_p90)],
      ["排队时长 中位", secs(t.queue_wait_p50)], ["处理时长 中位", secs(t.handling_p50)],
      ["满意度", t.csat_average === null ? "—" : t.csat_average.toFixed(2) + "（" + t.csat_count + " 条）"],
      ["首次回复达标率", pct(body.service_level.share) + "（" + body.service_level.answered + " 次）"]
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
    var sla = body.service_level;
    // Per agent for admins only: /api/stats leaves sla.by_agent out for trainers.
    $("sla-agents-box").hidden = !sla.by_agent;
    [["sla-agents", "客服", sla.by_agent || {}], ["sla-teams", "团队", sla.by_team]].forEach(function (s) {
      table($(s[0]), [s[1], "首次回复", "达标", "达标率"], Object.keys(s[2]).map(function (name) {
        var f = s[2][name];
        return [name, f.answered, f.within, pct(f.share)];
      }));
    });
    people(body);
    var channels = Object.keys(t.by_channel || {});
    table($("channels"), ["渠道", "会话", "消息（收/发）", "转人工", "人工接入"], channels.map(function (c) {
      var k = t.by_channel[c];
      return [CHANNELS[c] || c, k.conversations, k.messages_in + " / " + k.messages_out, k.escalations, k.handoffs];
    }));
    table($("sources"), ["来源", "会话"], (t.by_source || []).map(function (s) {
      return [s.source === "other" ? "其他（来源过多）" : s.source, s.conversations];
    }));
    table($("reasons"), ["原因", "次数"], reasons.map(function (r) { return [REASONS[r] || r, t.escalations_by_reason[r]]; }));
    table($("intents"), ["意图", "条数"], t.top_intents.map(function (i) { return [i.intent, i.count]; }));
    table($("unrecognized"), ["客户原话", "次数"], t.unrecognized.map(function (u) { return [u.text, u.count]; }));
    table($("days"), ["日期", "会话", "自动化率", "转人工", "没听懂", "满意度"], body.days.slice().reverse().map(function (d) {
      return [d.date, d.conversations, pct(d.automation_rate), d.escalations, pct(d.fallback_rate),
        d.csat_average === null ? "—" : d.csat_average.toFixed(2)];
    }));
  }

  // Per agent and per team (admins only: /api/stats sends by_agent to them alone).
  var STATUS = { online: "在线", away: "离开", offline: "离线" };
  function both(a, b) { return secs(a) + " / " + secs(b); }
  function csat(f) { return f.csat_average === null ? "—" : f.csat_average.toFixed(2) + "（" + f.csat_count + " 条）"; }
  function people(body) {
    $("people").hidden = !body.by_agent;
    if (!body.by_agent) return;
    $("agents-csv").href = "/api/stats.csv?by=agent&from=" + body.from + "&to=" + body.to;
    var agents = Object.keys(body.by_agent);
    table($("agents"), ["客服", "状态", "接待中 / 上限", "已处理", "首次回复 中位/P90", "首次回复达标率",
      "处理时长 中位/P90", "满意度", "接待中的会话"], agents.map(function (name) {
      var f = body.by_agent[name];
      return [name, STATUS[f.status] || f.status, f.load + " / " + f.capacity, f.handled,
        both(f.first_response_p50, f.first_response_p90),
        pct(f.service_level.share) + "（" + f.service_level.answered + " 次）",
        both(f.handling_p50, f.handling_p90), csat(f), f.holding.join("、") || "—"];
    }), { 8: "holding" }, "agent");
    var teams = Object.keys(body.by_team || {});
    table($("teams"), ["团队", "已处理", "首次回复 中位/P90", "首次回复达标率", "处理时长 中位/P90", "满意度"],
      teams.map(function (name) {
        var f = body.by_team[name];
        return [name, f.handled, both(f.first_response_p50, f.first_response_p90),
          pct(f.service_level.share) + "（" + f.service_level.answered + " 次）",
          both(f.handling_p50, f.handling_p90), csat(f)];
      }));
  }

  function table(node, head, rows, classes, key) {
    node.replaceChildren();
    var tr = el("tr");
    head.forEach(function (h, i) { tr.appendChild(el("th", i ? "num" : "", h)); });
    node.appendChild(tr);
    rows.forEach(function (r) {
      var row = el("tr");
      if (key) row.dataset[key] = r[0];
      r.forEach(function (c, i) { row.appendChild(el("td", (classes && classes[i]) || (i ? "num" : ""), c)); });
      node.appendChild(row);
    });
    if (!rows.length) { var empty = el("tr"); empty.appendChild(el("td", "", "暂无数据")); node.appendChild(empty); }
  }

  // Charts: Chart.js (bot/stats/static/vendor/, no CDN): tooltips, hi-DPI canvases, resizing.
  var charts = {};
  function chart(canvas, config) {
    if (charts[canvas.id]) charts[canvas.id].destroy();
    config.options = Object.assign({
      responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "top", labels: { boxWidth: 12 } } }
    }, config.options || {});
    charts[canvas.id] = new Chart(canvas, config);
    return charts[canvas.id];
  }
  function dataset(s, k, extra) {
    return Object.assign({ label: s.name, data: s.values, backgroundColor: COLORS[k % COLORS.length],
      borderColor: COLORS[k % COLORS.length] }, extra || {});
  }
  function bars(canvas, labels, series, rate, stacked) {
    var sets = series.map(function (s, k) { return dataset(s, k, { type: "bar", yAxisID: "y", order: 2 }); });
    var scales = { x: { stacked: !!stacked }, y: { stacked: !!stacked, beginAtZero: true, ticks: { precision: 0 } } };
    if (rate) {
      sets.push(dataset(rate, series.length, { type: "line", yAxisID: "rate", order: 1, spanGaps: true,
        tooltip: { callbacks: { label: function (c) { return rate.name + "：" + pct(c.raw); } } } }));
      scales.rate = { position: "right", min: 0, max: 1, grid: { drawOnChartArea: false },
        ticks: { callback: function (v) { return Math.round(v * 100) + "%"; } } };
    }
    chart(canvas, { type: "bar", data: { labels: labels, datasets: sets }, options: { scales: scales } });
  }
  function lines(canvas, labels, series) {
    chart(canvas, {
      type: "line",
      data: { labels: labels, datasets: series.map(function (s, k) { return dataset(s, k, { spanGaps: true }); }) },
      options: {
        scales: { y: { beginAtZero: true, ticks: { callback: function (v) { return v + " s"; } } } },
        plugins: { tooltip: { callbacks: { label: function (c) { return c.dataset.label + "：" + secs(c.raw); } } } }
      }
    });
  }

  Kefu.start({
    title: "数据看板", roles: ["trainer", "admin"], refused: "数据看板需要 trainer 或 admin 账号。",
    onStart: load
  });
})();
