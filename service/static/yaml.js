// A tiny YAML highlighter for the examples the answers carry. It only ever creates text
// nodes inside <span>s (never parses HTML), so a manifest from an untrusted note stays text.
"use strict";

window.NotesYaml = (function () {
  const KEY = /^(\s*)(-\s+)?((?:"[^"]*"|'[^']*'|[^\s#'"][^#]*?))(:)(?=\s|$)(.*)$/;
  const ITEM = /^(\s*)(-)(\s+|$)(.*)$/;
  const NUMBER = /^[-+]?(\d[\d_]*)(\.\d+)?([eE][-+]?\d+)?$/;
  const LITERAL = /^(true|false|yes|no|on|off|null|~)$/i;

  function span(cls, text) {
    const el = document.createElement("span");
    if (cls) el.className = cls;
    el.textContent = text;
    return el;
  }

  // A value, with a trailing " # comment" split off.
  function appendValue(out, text) {
    let comment = "";
    const hash = text.search(/(^|\s)#/);
    if (hash >= 0 && !/^\s*["']/.test(text)) {
      comment = text.slice(hash);
      text = text.slice(0, hash);
    }
    const lead = text.match(/^\s*/)[0];
    const value = text.slice(lead.length);
    const trail = value.match(/\s*$/)[0];
    const core = value.slice(0, value.length - trail.length);
    out.appendChild(document.createTextNode(lead));
    if (core) {
      let cls = "y-str";
      if (/^["'].*["']$/.test(core)) cls = "y-quoted";
      else if (NUMBER.test(core)) cls = "y-num";
      else if (LITERAL.test(core)) cls = "y-lit";
      else if (/^[|>][-+]?\d*$/.test(core)) cls = "y-punct";
      else if (/^[&*][\w-]+$/.test(core)) cls = "y-anchor";
      out.appendChild(span(cls, core));
    }
    if (trail) out.appendChild(document.createTextNode(trail));
    if (comment) out.appendChild(span("y-comment", comment));
  }

  function line(text) {
    const out = document.createElement("span");
    out.className = "y-line";
    let m;
    if (/^\s*#/.test(text)) {
      out.appendChild(span("y-comment", text));
    } else if (/^(---|\.\.\.)\s*$/.test(text)) {
      out.appendChild(span("y-punct", text));
    } else if ((m = text.match(KEY))) {
      out.appendChild(document.createTextNode(m[1]));
      if (m[2]) out.appendChild(span("y-punct", m[2]));
      out.appendChild(span("y-key", m[3]));
      out.appendChild(span("y-punct", m[4]));
      appendValue(out, m[5]);
    } else if ((m = text.match(ITEM))) {
      out.appendChild(document.createTextNode(m[1]));
      out.appendChild(span("y-punct", m[2]));
      appendValue(out, m[3] + m[4]);
    } else {
      appendValue(out, text);
    }
    out.appendChild(document.createTextNode("\n"));
    return out;
  }

  // A <code> element holding `source`, one span per line.
  function highlight(source) {
    const code = document.createElement("code");
    code.className = "yaml";
    const lines = source.replace(/\n$/, "").split("\n");
    for (const text of lines) code.appendChild(line(text));
    return code;
  }

  return { highlight: highlight };
})();
