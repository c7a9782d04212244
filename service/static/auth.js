// API keys for the page. When the service has keys set (NOTESQA_API_KEYS), a request
// answered 401 opens a small dialog asking for one; the key is kept in this browser
// (localStorage) and sent as "Authorization: Bearer …". It is also set as a same-site
// cookie, so the note view and the statistics page, opened as ordinary links, get in too.
(function () {
  "use strict";

  const KEY = "notesqa.apiKey";
  const COOKIE = "notesqa_key";

  function stored() {
    try {
      return localStorage.getItem(KEY) || "";
    } catch (_) {
      return "";
    }
  }

  function remember(key) {
    try {
      localStorage.setItem(KEY, key);
    } catch (_) {
      // Private mode: the key lasts for this page only.
    }
    document.cookie = `${COOKIE}=${encodeURIComponent(key)}; Path=/; SameSite=Strict; Max-Age=31536000`;
  }

  function forget() {
    try {
      localStorage.removeItem(KEY);
    } catch (_) {
      // nothing kept
    }
    document.cookie = `${COOKIE}=; Path=/; SameSite=Strict; Max-Age=0`;
  }

  let pending = null;

  // Resolves with the key typed, or "" when the dialog is cancelled. One dialog at a time.
  function askForKey(message) {
    if (pending) return pending;
    pending = new Promise((resolve) => {
      const dialog = document.createElement("dialog");
      dialog.className = "key-dialog";
      const form = document.createElement("form");
      form.method = "dialog";
      const title = document.createElement("h2");
      title.textContent = "需要 API 密钥";
      const text = document.createElement("p");
      text.textContent = message || "这个服务开启了访问控制，请输入管理员提供的 API 密钥。";
      const input = document.createElement("input");
      input.type = "password";
      input.autocomplete = "off";
      input.id = "api-key";
      input.setAttribute("aria-label", "API 密钥");
      const actions = document.createElement("div");
      actions.className = "key-actions";
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "btn btn-ghost";
      cancel.textContent = "取消";
      const ok = document.createElement("button");
      ok.type = "submit";
      ok.className = "btn btn-primary";
      ok.textContent = "确定";
      actions.append(cancel, ok);
      form.append(title, text, input, actions);
      dialog.append(form);
      document.body.append(dialog);
      let result = "";
      form.addEventListener("submit", () => {
        result = input.value.trim();
      });
      cancel.addEventListener("click", () => dialog.close());
      dialog.addEventListener("close", () => {
        dialog.remove();
        pending = null;
        resolve(result);
      });
      dialog.showModal();
      input.focus();
    });
    return pending;
  }

  // fetch() with the stored key; on 401 asks for a key (at most twice) and tries again.
  async function notesqaFetch(url, options) {
    const opts = Object.assign({}, options || {});
    for (let attempt = 0; ; attempt++) {
      const headers = Object.assign({}, opts.headers || {});
      const key = stored();
      if (key) headers.Authorization = `Bearer ${key}`;
      const response = await fetch(url, Object.assign({}, opts, { headers: headers }));
      if (response.status !== 401 || attempt >= 2) return response;
      forget();
      const typed = await askForKey(attempt === 0 ? "" : "密钥不对，请重新输入。");
      if (!typed) return response;
      remember(typed);
    }
  }

  window.notesqaFetch = notesqaFetch;
})();
