// The note view: `#L59-L64` (or `#L59`) highlights the blocks rendered from those source lines
// and scrolls to them. Every block carries `data-lines="start-end"` from the server.
"use strict";

(function () {
  const banner = document.getElementById("cite-banner");
  const label = document.getElementById("cite-label");
  const clear = document.getElementById("cite-clear");

  function parse(hash) {
    const m = /^#L(\d+)(?:-L?(\d+))?$/.exec(hash);
    if (!m) return null;
    const start = Number(m[1]);
    const end = m[2] ? Number(m[2]) : start;
    return start <= end ? [start, end] : [end, start];
  }

  function unhighlight() {
    document.querySelectorAll(".cited").forEach((node) => node.classList.remove("cited"));
    banner.hidden = true;
  }

  function highlight() {
    unhighlight();
    const range = parse(window.location.hash);
    if (!range) return;
    const [start, end] = range;
    const hits = [];
    document.querySelectorAll("[data-lines]").forEach((node) => {
      const [a, b] = node.dataset.lines.split("-").map(Number);
      if (a <= end && b >= start) hits.push(node);
    });
    label.textContent =
      start === end ? `引用的是第 ${start} 行` : `引用的是第 ${start}–${end} 行`;
    if (!hits.length) label.textContent += "（这篇笔记没有这些行，可能已被修改）";
    banner.hidden = false;
    hits.forEach((node) => node.classList.add("cited"));
    if (hits.length) {
      // A short passage is centred; a long one starts at the top so its beginning shows.
      const top = hits[0].getBoundingClientRect().top;
      const bottom = hits[hits.length - 1].getBoundingClientRect().bottom;
      hits[0].scrollIntoView({ block: bottom - top < window.innerHeight * 0.6 ? "center" : "start" });
    }
  }

  // On a phone the outline starts folded, so the cited lines are what shows first.
  const outline = document.querySelector(".outline details");
  if (outline && window.matchMedia("(max-width: 720px)").matches) outline.open = false;

  clear.addEventListener("click", (event) => {
    event.preventDefault();
    history.replaceState(null, "", window.location.pathname + window.location.search);
    unhighlight();
  });
  window.addEventListener("hashchange", highlight);
  highlight();
})();
