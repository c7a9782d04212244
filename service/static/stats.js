// The help-desk lead's page: the numbers of GET /admin/stats (JSON), shown as text only.
"use strict";

(function () {
  const SOURCES = [
    ["web", "网页"],
    ["slack", "Slack"],
    ["api", "API"],
    ["cli", "命令行"],
  ];
  const daysSelect = document.getElementById("days");
  const period = document.getElementById("period");
  const errorBox = document.getElementById("stats-error");
  const disabledBox = document.getElementById("stats-disabled");

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function percent(share) {
    return share === null || share === undefined ? "—" : `${Math.round(share * 100)}%`;
  }

  function when(ts) {
    const d = new Date(ts * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getMonth() + 1}月${d.getDate()}日 ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function noteLink(cited) {
    // "file.md:12-15" -> the note view at those lines.
    const m = /^(.*):(\d+)-(\d+)$/.exec(cited);
    const a = el("a", "chip", cited);
    if (m) {
      a.href = "/notes/" + m[1].split("/").map(encodeURIComponent).join("/") + `#L${m[2]}-L${m[3]}`;
      a.target = "_blank";
      a.rel = "noopener";
    }
    return a;
  }

  function tile(label, value, sub) {
    const t = el("div", "tile");
    t.appendChild(el("div", "tile-value", value));
    t.appendChild(el("div", "tile-label", label));
    if (sub) t.appendChild(el("div", "tile-sub muted", sub));
    return t;
  }

  function renderTiles(data) {
    const box = document.getElementById("tiles");
    box.replaceChildren();
    const t = data.totals;
    const sources = SOURCES.filter(([k]) => t.by_source[k])
      .map(([k, name]) => `${name} ${t.by_source[k]}`)
      .join(" · ");
    box.appendChild(tile("提问", t.asked, sources || "还没有人提问"));
    box.appendChild(tile("回答率", percent(t.share_answered), `已回答 ${t.answered}`));
    box.appendChild(tile("👍 有帮助", t.up));
    box.appendChild(tile("👎 没帮助", t.down));
  }

  function renderUnanswered(data) {
    const box = document.getElementById("unanswered");
    box.replaceChildren();
    if (!data.unanswered.length) {
      box.appendChild(el("p", "muted empty", "这段时间里所有问题都有回答。"));
      return;
    }
    const ol = el("ol", "ranked");
    for (const group of data.unanswered) {
      const li = el("li");
      const top = el("div", "ranked-top");
      top.appendChild(el("span", "ranked-text", group.question));
      top.appendChild(el("span", "count", `${group.count} 次`));
      li.appendChild(top);
      if (group.variants.length) {
        const v = el("div", "variants muted");
        v.appendChild(document.createTextNode("相近问法："));
        group.variants.slice(0, 5).forEach((text, i) => {
          if (i) v.appendChild(document.createTextNode("；"));
          v.appendChild(el("q", null, text));
        });
        if (group.variants.length > 5) {
          v.appendChild(document.createTextNode(` 等 ${group.variants.length} 种`));
        }
        li.appendChild(v);
      }
      li.appendChild(el("div", "ranked-meta muted", `最近一次：${when(group.last_asked)}`));
      ol.appendChild(li);
    }
    box.appendChild(ol);
  }

  function renderDownvoted(data) {
    const box = document.getElementById("downvoted");
    box.replaceChildren();
    if (!data.downvoted.length) {
      box.appendChild(el("p", "muted empty", "这段时间里没有回答被点 👎。"));
      return;
    }
    const ol = el("ol", "ranked");
    for (const a of data.downvoted) {
      const li = el("li");
      const top = el("div", "ranked-top");
      top.appendChild(el("span", "ranked-text", a.question));
      top.appendChild(el("span", "count down", `👎 ${a.down}` + (a.up ? ` · 👍 ${a.up}` : "")));
      li.appendChild(top);
      li.appendChild(el("p", "quoted-answer", a.answer));
      const meta = el("div", "ranked-meta muted");
      meta.appendChild(document.createTextNode(`${when(a.ts)} · `));
      for (const cited of a.cited) meta.appendChild(noteLink(cited));
      li.appendChild(meta);
      ol.appendChild(li);
    }
    box.appendChild(ol);
  }

  function renderPerDay(data) {
    const table = document.getElementById("per-day");
    table.replaceChildren();
    const head = el("tr");
    for (const h of ["日期", "提问", "已回答", "回答率", ...SOURCES.map(([, n]) => n), "👍", "👎"]) {
      head.appendChild(el("th", null, h));
    }
    const thead = el("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    const body = el("tbody");
    const peak = Math.max(1, ...data.per_day.map((d) => d.asked));
    for (const d of data.per_day.slice().reverse()) {
      const tr = el("tr");
      tr.appendChild(el("td", "day", d.day));
      const asked = el("td", "num bar-cell");
      const bar = el("span", "bar");
      bar.style.width = `${Math.round((d.asked / peak) * 100)}%`;
      asked.appendChild(bar);
      asked.appendChild(el("span", "bar-num", d.asked));
      tr.appendChild(asked);
      tr.appendChild(el("td", "num", d.answered));
      tr.appendChild(el("td", "num", percent(d.share_answered)));
      for (const [k] of SOURCES) tr.appendChild(el("td", "num", d.by_source[k] || 0));
      tr.appendChild(el("td", "num", d.up));
      tr.appendChild(el("td", "num", d.down));
      body.appendChild(tr);
    }
    table.appendChild(body);
  }

  async function refresh() {
    const days = daysSelect.value;
    errorBox.hidden = true;
    period.textContent = "正在加载…";
    let response;
    try {
      response = await window.notesqaFetch(`/admin/stats?format=json&days=${encodeURIComponent(days)}`, {
        headers: { Accept: "application/json" },
      });
    } catch (_) {
      errorBox.textContent = "无法连接到服务，请检查网络后刷新页面。";
      errorBox.hidden = false;
      period.textContent = "";
      return;
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      // handled below
    }
    if (!response.ok || !data || !data.totals) {
      const message = data && data.message ? data.message : `HTTP ${response.status}`;
      errorBox.textContent = `统计数据加载失败：${message}`;
      errorBox.hidden = false;
      period.textContent = "";
      return;
    }
    period.textContent =
      data.since === data.until ? `${data.until}（今天）` : `${data.since} 至 ${data.until}`;
    period.textContent += ` · 问答记录保留 ${data.retention_days} 天`;
    disabledBox.hidden = data.enabled;
    if (!data.enabled) {
      disabledBox.textContent =
        "没有保存任何问答记录（NOTESQA_RETENTION_DAYS=0），所以没有统计数据。需要统计时，请设置保留天数。";
      period.textContent = "未保存问答记录";
    }
    renderTiles(data);
    renderUnanswered(data);
    renderDownvoted(data);
    renderPerDay(data);
  }

  daysSelect.addEventListener("change", refresh);
  refresh();
})();
