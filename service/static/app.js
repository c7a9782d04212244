// The help-desk chat page. It speaks only the public API (/ask, /feedback, /notes links), and
// builds every piece of text with textContent: answers quote untrusted notes and questions.
"use strict";

(function () {
  const STORAGE_KEY = "notesqa.chat.v1";
  const VOTER_KEY = "notesqa.voter";
  const MAX_HISTORY_TURNS = 10; // question + answer pairs sent as `history`

  const form = document.getElementById("ask-form");
  const input = document.getElementById("question");
  const send = document.getElementById("send");
  const turnsEl = document.getElementById("turns");
  const welcome = document.getElementById("welcome");
  const newChat = document.getElementById("new-chat");

  /** @type {{question: string, response?: object, error?: {kind: string, message: string}, votes?: object}[]} */
  let turns = load();
  let busy = false;

  // ---- small DOM helpers ---------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Only same-origin note links from the API become hrefs: never javascript: or elsewhere.
  function noteLink(url, className, text) {
    const a = el("a", className, text);
    if (typeof url === "string" && url.startsWith("/notes/")) {
      a.href = url;
      a.target = "_blank";
      a.rel = "noopener";
    }
    return a;
  }

  function linesLabel(lines) {
    return lines[0] === lines[1] ? `第 ${lines[0]} 行` : `第 ${lines[0]}–${lines[1]} 行`;
  }

  // ---- persistence (the conversation survives a reload, not a new tab) -----------------

  function load() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "[]");
      return Array.isArray(saved) ? saved.filter((t) => t && typeof t.question === "string") : [];
    } catch (_) {
      return [];
    }
  }

  function save() {
    try {
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify(turns));
    } catch (_) {
      // Storage full or disabled: the conversation still works, it just won't survive a reload.
    }
  }

  function voterId() {
    try {
      let id = localStorage.getItem(VOTER_KEY);
      if (!id) {
        id = "web:" + (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
        localStorage.setItem(VOTER_KEY, id);
      }
      return id;
    } catch (_) {
      return "web:anonymous";
    }
  }

  // ---- asking ---------------------------------------------------------------------------

  function history() {
    const done = turns.filter((t) => t.response && t.response.found !== undefined);
    const out = [];
    for (const t of done.slice(-MAX_HISTORY_TURNS)) {
      out.push({ role: "user", content: t.question });
      out.push({ role: "assistant", content: t.response.answer });
    }
    return out;
  }

  async function readError(response) {
    let message = "";
    try {
      const body = await response.json();
      message = body && typeof body.message === "string" ? body.message : "";
    } catch (_) {
      // Not JSON (a proxy's error page): the status says enough.
    }
    if (response.status === 401) {
      return { kind: "auth", message: message || "需要有效的 API 密钥。" };
    }
    if (response.status === 429) {
      return { kind: "server", message: message || "请求太频繁，请稍后再试。" };
    }
    if (response.status === 422) {
      return { kind: "invalid", message: message || "请求参数有误。" };
    }
    if (response.status === 503) {
      return {
        kind: "loading",
        message: "服务正在加载笔记索引，请稍等几秒再试。" + (message ? `（${message}）` : ""),
      };
    }
    return {
      kind: "server",
      message: `服务出错（HTTP ${response.status}）` + (message ? `：${message}` : "，请稍后再试。"),
    };
  }

  async function ask(question) {
    if (busy) return;
    const turn = { question: question };
    const sentHistory = history();
    turns.push(turn);
    setBusy(true);
    render();
    try {
      let response;
      try {
        response = await window.notesqaFetch("/ask", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ question: question, history: sentHistory, client: "web" }),
        });
      } catch (_) {
        turn.error = {
          kind: "network",
          message: "无法连接到服务，请检查网络或确认服务正在运行，然后重试。",
        };
        return;
      }
      if (!response.ok) {
        turn.error = await readError(response);
        // A refused question comes back to the box, to be shortened or fixed.
        if (turn.error.kind === "invalid" && !input.value) input.value = question;
        return;
      }
      try {
        turn.response = await response.json();
      } catch (_) {
        turn.error = { kind: "server", message: "服务返回的内容无法解析，请稍后再试。" };
      }
    } finally {
      setBusy(false);
      save();
      render();
      input.focus();
    }
  }

  async function vote(turn, direction, box) {
    const status = box.querySelector(".vote-status");
    const buttons = box.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    status.textContent = "正在提交…";
    status.className = "vote-status";
    try {
      const response = await window.notesqaFetch("/feedback", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ id: turn.response.id, vote: direction, user: voterId() }),
      });
      if (!response.ok) {
        const error = await readError(response);
        status.textContent = "投票没有记录：" + error.message;
        status.className = "vote-status error-text";
        return;
      }
      turn.vote = direction;
      save();
      status.textContent = direction === "up" ? "已记录：有帮助，谢谢！" : "已记录：没帮助，我们会补充笔记。";
      box.querySelectorAll("button").forEach((b) => {
        b.setAttribute("aria-pressed", String(b.dataset.vote === direction));
      });
    } catch (_) {
      status.textContent = "投票没有记录：无法连接到服务，请重试。";
      status.className = "vote-status error-text";
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  // ---- rendering ------------------------------------------------------------------------

  function setBusy(value) {
    busy = value;
    send.disabled = value;
    send.textContent = value ? "检索中…" : "发送";
    form.setAttribute("aria-busy", String(value));
  }

  function answerText(text, citations) {
    const p = el("p", "answer-text");
    const byId = new Map(citations.map((c) => [c.id, c]));
    const parts = text.split(/(\[\d+\])/);
    for (const part of parts) {
      const m = part.match(/^\[(\d+)\]$/);
      const citation = m && byId.get(Number(m[1]));
      if (citation) {
        const a = noteLink(citation.url, "marker", part);
        a.title = `${citation.source} · ${linesLabel(citation.lines)}`;
        a.setAttribute("aria-label", `出处 ${m[1]}：${citation.source} ${linesLabel(citation.lines)}`);
        p.appendChild(a);
      } else if (part) {
        p.appendChild(document.createTextNode(part));
      }
    }
    return p;
  }

  function citationCard(c) {
    const li = el("li");
    const a = noteLink(c.url, "citation");
    const top = el("span", "citation-top");
    top.appendChild(el("span", "cite-id", c.id));
    top.appendChild(el("span", "cite-file", c.source));
    top.appendChild(el("span", "cite-lines", linesLabel(c.lines)));
    a.appendChild(top);
    if (c.heading && c.heading.length) {
      a.appendChild(el("span", "cite-heading", c.heading.join(" › ")));
    }
    if (c.matched_terms && c.matched_terms.length) {
      const terms = el("span", "terms");
      terms.appendChild(el("span", "terms-label", "匹配："));
      for (const term of c.matched_terms) terms.appendChild(el("span", "term", term));
      a.appendChild(terms);
    }
    li.appendChild(a);
    return li;
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    // Plain-http intranet hosts have no Clipboard API; the old way still works there.
    const area = el("textarea", "offscreen");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    if (!ok) throw new Error("copy refused");
  }

  // "出处 [n]": the cited note lines a code block comes from (null when n is not cited).
  function sourceLink(id, citations, className) {
    const citation = citations.find((c) => c.id === id);
    if (!citation) return null;
    const src = noteLink(citation.url, className, `出处 [${id}]`);
    src.title = `${citation.source} · ${linesLabel(citation.lines)}`;
    src.setAttribute("aria-label", `出处 ${id}：${citation.source} ${linesLabel(citation.lines)}`);
    return src;
  }

  function copyButton(text, label) {
    const copy = el("button", "btn btn-small copy", "复制");
    copy.type = "button";
    copy.setAttribute("aria-label", label);
    copy.addEventListener("click", async () => {
      try {
        await copyText(text);
        copy.textContent = "已复制 ✓";
        copy.classList.add("done");
      } catch (_) {
        copy.textContent = "复制失败，请手动选择";
      }
      setTimeout(() => {
        copy.textContent = "复制";
        copy.classList.remove("done");
      }, 2000);
    });
    return copy;
  }

  // A shell command from the notes: its language, where it comes from, a copy button and
  // the command itself, as text.
  function commandCard(ex, citations) {
    const card = el("section", "command-card");
    const head = el("div", "command-head");
    head.appendChild(el("strong", "command-lang", ex.language || "shell"));
    const src = sourceLink(ex.citation, citations, "command-source");
    if (src) head.appendChild(src);
    const first = String(ex.text).split("\n")[0];
    const shown = first.length > 40 ? first.slice(0, 40) + "…" : first;
    head.appendChild(copyButton(ex.text, `复制命令：${shown}`));
    card.appendChild(head);
    const pre = el("pre", "command-code");
    pre.appendChild(el("code", "command", String(ex.text).replace(/\n$/, "")));
    card.appendChild(pre);
    return card;
  }

  function yamlCard(ex, citations) {
    const card = el("section", "yaml-card");
    const head = el("div", "yaml-head");
    const title = el("span", "yaml-title");
    title.appendChild(el("strong", null, ex.kind || "YAML"));
    if (ex.name) title.appendChild(el("span", "yaml-name", ex.name));
    if (ex.api_version) title.appendChild(el("span", "yaml-api", ex.api_version));
    head.appendChild(title);
    const src = sourceLink(ex.citation, citations, "yaml-source");
    if (src) head.appendChild(src);
    head.appendChild(copyButton(ex.yaml, `复制 ${ex.kind || "YAML"} 示例`));
    card.appendChild(head);

    const problems = [];
    if (ex.valid === false) problems.push("YAML 语法有误，无法解析。");
    if (ex.k8s_valid === false) problems.push(...(ex.problems || []));
    if (problems.length) {
      const warn = el("div", "yaml-warning");
      warn.setAttribute("role", "note");
      warn.appendChild(el("strong", null, "⚠ 这个示例不能直接使用："));
      const ul = el("ul");
      for (const problem of problems) ul.appendChild(el("li", null, problem));
      warn.appendChild(ul);
      card.appendChild(warn);
    }
    const pre = el("pre", "yaml-code");
    pre.appendChild(window.NotesYaml.highlight(ex.yaml));
    card.appendChild(pre);
    return card;
  }

  function voteBox(turn) {
    const box = el("div", "vote");
    box.appendChild(el("span", "vote-label", "这个回答有帮助吗？"));
    for (const [direction, label, name] of [
      ["up", "👍", "有帮助"],
      ["down", "👎", "没帮助"],
    ]) {
      const b = el("button", "btn btn-vote", label);
      b.type = "button";
      b.dataset.vote = direction;
      b.title = name;
      b.setAttribute("aria-label", name);
      b.setAttribute("aria-pressed", String(turn.vote === direction));
      b.addEventListener("click", () => vote(turn, direction, box));
      box.appendChild(b);
    }
    const status = el("span", "vote-status");
    status.setAttribute("role", "status");
    if (turn.vote) status.textContent = "已记录，谢谢！";
    box.appendChild(status);
    return box;
  }

  function answerCard(turn) {
    const r = turn.response;
    const card = el("div", r.found ? "answer card" : "answer card not-found");
    card.dataset.state = r.found ? "found" : "not-found";
    if (r.rewritten_query && r.rewritten_query !== r.question) {
      const note = el("p", "rewritten");
      note.appendChild(document.createTextNode("结合上文，按 "));
      note.appendChild(el("q", null, r.rewritten_query));
      note.appendChild(document.createTextNode(" 检索"));
      card.appendChild(note);
    }
    if (!r.found) {
      card.appendChild(el("h2", "not-found-title", "笔记中没有找到"));
      card.appendChild(el("p", "answer-text", r.answer));
      if (r.suggestions && r.suggestions.length) {
        const box = el("div", "suggestions");
        box.appendChild(el("h3", null, "最接近的章节，也许有帮助："));
        const ul = el("ul");
        for (const s of r.suggestions) {
          const li = el("li");
          const a = noteLink(s.url, "suggestion");
          a.appendChild(el("span", "cite-heading", (s.heading || []).join(" › ") || s.source));
          a.appendChild(el("span", "cite-meta", `${s.source} · ${linesLabel(s.lines)}`));
          li.appendChild(a);
          ul.appendChild(li);
        }
        box.appendChild(ul);
        card.appendChild(box);
      }
      card.appendChild(el("p", "muted hint", "可以换个说法、补充关键词，或把这个问题反馈给笔记维护者。"));
    } else {
      card.appendChild(answerText(r.answer, r.citations || []));
      if (r.citations && r.citations.length) {
        const box = el("div", "citations");
        box.appendChild(el("h3", null, "出处"));
        const ol = el("ol");
        for (const c of r.citations) ol.appendChild(citationCard(c));
        box.appendChild(ol);
        card.appendChild(box);
      }
      if (r.command_examples && r.command_examples.length) {
        const box = el("div", "command-examples");
        box.appendChild(el("h3", null, "命令"));
        for (const ex of r.command_examples) box.appendChild(commandCard(ex, r.citations || []));
        card.appendChild(box);
      }
      if (r.yaml_examples && r.yaml_examples.length) {
        const box = el("div", "yaml-examples");
        box.appendChild(el("h3", null, "YAML 示例"));
        for (const ex of r.yaml_examples) box.appendChild(yamlCard(ex, r.citations || []));
        card.appendChild(box);
      }
    }
    const foot = el("div", "answer-foot");
    if (r.id) foot.appendChild(voteBox(turn));
    if (r.timings_ms && typeof r.timings_ms.total === "number") {
      foot.appendChild(el("span", "timing", `用时 ${Math.round(r.timings_ms.total)} ms`));
    }
    card.appendChild(foot);
    return card;
  }

  function errorCard(turn, index) {
    const card = el("div", "answer card error");
    card.dataset.state = "error";
    card.setAttribute("role", "alert");
    const titles = { invalid: "问题没有发出", loading: "服务正在启动", network: "连接失败" };
    card.appendChild(el("h2", "error-title", titles[turn.error.kind] || "出错了"));
    card.appendChild(el("p", "error-text", turn.error.message));
    if (turn.error.kind !== "invalid") {
      const retry = el("button", "btn btn-small", "重试");
      retry.type = "button";
      retry.addEventListener("click", () => {
        turns.splice(index, 1);
        ask(turn.question);
      });
      card.appendChild(retry);
    }
    return card;
  }

  function pendingCard() {
    const card = el("div", "answer card pending");
    card.dataset.state = "loading";
    card.setAttribute("aria-busy", "true");
    card.appendChild(el("span", "spinner"));
    card.appendChild(el("span", null, "正在检索笔记…"));
    return card;
  }

  function render() {
    welcome.hidden = turns.length > 0;
    turnsEl.replaceChildren();
    turns.forEach((turn, index) => {
      const article = el("article", "turn");
      const bubble = el("div", "bubble", turn.question);
      article.appendChild(bubble);
      if (turn.response) article.appendChild(answerCard(turn));
      else if (turn.error) article.appendChild(errorCard(turn, index));
      else article.appendChild(pendingCard());
      turnsEl.appendChild(article);
    });
    const last = turnsEl.lastElementChild;
    if (last) last.scrollIntoView({ block: "start", behavior: "auto" });
  }

  // ---- wiring ---------------------------------------------------------------------------

  function submit() {
    const question = input.value.trim();
    if (!question || busy) return;
    input.value = "";
    resize();
    ask(question);
  }

  function resize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 200) + "px";
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    // Enter while an input method is composing picks a candidate; it must not send.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", resize);
  newChat.addEventListener("click", () => {
    if (busy) return;
    turns = [];
    save();
    render();
    input.value = "";
    resize();
    input.focus();
  });
  document.querySelectorAll(".example").forEach((button) => {
    button.addEventListener("click", () => ask(button.dataset.question));
  });

  render();
  input.focus();
})();
