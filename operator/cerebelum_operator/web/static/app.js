// @ts-check
// Cerebelum's UI: the pages are rendered by the engine; this script only keeps them current.
// It follows the server's change notices (server-sent events) and swaps in fresh fragments of
// the same page, never while someone is typing in them. Without it every page still works.
"use strict";

/** @param {HTMLElement} region */
function busy(region) {
  const active = document.activeElement;
  if (active && region.contains(active) && active.matches("input, textarea, select")) return true;
  for (const field of region.querySelectorAll("input:not([type=hidden]), textarea")) {
    const input = /** @type {HTMLInputElement | HTMLTextAreaElement} */ (field);
    if (input.value !== input.defaultValue) return true;
  }
  return false;
}

/** @param {Element} details */
function keyOf(details) {
  const owner = details.closest("[data-seq], [data-step]");
  return owner ? (owner.getAttribute("data-seq") ?? owner.getAttribute("data-step") ?? "") : "";
}

/**
 * Fetch a region's fragment and put it in place, keeping which <details> were open.
 * @param {HTMLElement} region
 */
async function refresh(region) {
  const url = region.dataset.fragment;
  if (!url || busy(region)) return false;
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (!response.ok || response.redirected) return false;
  const html = await response.text();
  if (busy(region)) return false;
  const open = new Set(Array.from(region.querySelectorAll("details[open]"), keyOf));
  const template = document.createElement("template");
  template.innerHTML = html;
  region.replaceChildren(template.content);
  for (const details of region.querySelectorAll("details")) {
    if (open.has(keyOf(details))) details.setAttribute("open", "");
  }
  return true;
}

function follow() {
  const main = /** @type {HTMLElement | null} */ (document.querySelector("main[data-live]"));
  if (!main || typeof EventSource === "undefined") return;
  const params = new URLSearchParams();
  if (main.dataset.execution) params.set("execution", main.dataset.execution);
  if (main.dataset.since) params.set("since", main.dataset.since);
  const status = document.createElement("p");
  status.className = "live-status";
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  main.prepend(status);
  // One refresh at a time; a notice that comes meanwhile asks for one more after it, so the last
  // change is never dropped (the server sends at most one notice a second).
  let running = false;
  let again = false;
  const update = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        const regions = /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll("[data-follow=yes]"));
        let changed = false;
        for (const region of regions) changed = (await refresh(region).catch(() => false)) || changed;
        if (changed) status.textContent = "Updated " + new Date().toISOString().slice(11, 19) + " UTC";
      } while (again);
    } finally {
      running = false;
    }
  };
  const source = new EventSource("/events?" + params.toString());
  source.addEventListener("changed", () => void update());
  source.addEventListener("open", () => main.setAttribute("data-following", "true"));
  window.addEventListener("pagehide", () => source.close());
}

function confirmations() {
  document.addEventListener("submit", (event) => {
    const form = /** @type {HTMLFormElement} */ (event.target);
    const question = form.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  confirmations();
  follow();
});
