// Executions, newest first, a page at a time ("Older executions" appends the next); the
// list refreshes itself (often while one is running), asking only for what can have
// changed: the executions started since the oldest running row, or since the newest row
// when nothing runs. Finished rows never change again, so the answer is usually a row or
// two however long the list on screen is, and the server reads no more of its index.
import { api } from "./api.js";
import { badge, clear, h, time } from "./dom.js";
import { href } from "./router.js";

const RUNNING_REFRESH_MS = 2000;
const IDLE_REFRESH_MS = 10000;
const PAGE_SIZE = 50;
const MAX_PAGE = 1000;

function duration(record) {
  if (!record.started_at) return "";
  const end = record.finished_at ? new Date(record.finished_at) : new Date();
  const seconds = Math.max(0, (end - new Date(record.started_at)) / 1000);
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function table(sorted) {
  return h("table", { id: "executions" },
    h("thead", null, h("tr", null, h("th", null, "Execution"), h("th", null, "Status"), h("th", null, "Started"),
      h("th", { class: "hide-narrow" }, "Finished"), h("th", { class: "num hide-narrow" }, "Duration"),
      h("th", { class: "num" }, "Objects"))),
    h("tbody", null, sorted.map((record) => h("tr", { dataset: { execution: record.execution_id } },
      h("td", { class: "key" }, h("a", { href: href("execution", record.execution_id) }, record.execution_id)),
      h("td", null, badge(record.status)),
      h("td", null, time(record.started_at)),
      h("td", { class: "hide-narrow" }, record.finished_at ? time(record.finished_at) : "—"),
      h("td", { class: "num hide-narrow" }, duration(record)),
      h("td", { class: "num" }, record.object_count ?? "")))));
}

// The start from which rows can still change: the oldest running (or being deleted) row's,
// else the newest row's (to see executions started since); null when no row has a start.
const CHANGING = new Set(["running", "deleting"]);
function changedSince(rows) {
  const running = rows.filter((record) => CHANGING.has(record.status) && record.started_at);
  const starts = (running.length ? running : rows.slice(0, 1)).map((record) => record.started_at).filter(Boolean);
  if (!starts.length) return null;
  return starts.reduce((oldest, start) => (new Date(start) < new Date(oldest) ? start : oldest));
}

// The answer holds every execution started at or after ``since``: those rows are replaced
// by it (a row missing from it was deleted), new ones go on top, older rows stay.
function merge(rows, fresh, since) {
  const from = new Date(since);
  const kept = rows.filter((record) => !record.started_at || new Date(record.started_at) < from);
  const ids = new Set(fresh.map((record) => record.execution_id));
  return fresh.concat(kept.filter((record) => !ids.has(record.execution_id)));
}

export async function renderExecutions(main, route, ctx) {
  ctx.setCrumbs([["executions", null]]);
  let page = await api.executions({ limit: PAGE_SIZE });
  let shown = page.executions;
  const holder = h("div");
  const more = h("button", { type: "button", class: "button", id: "more-executions" }, "Older executions »");
  const pager = h("div", { class: "pager" }, more);
  const draw = () => {
    clear(holder).append(table(shown));
    pager.hidden = !page.next_cursor;
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      page = await api.executions({ limit: PAGE_SIZE, cursor: page.next_cursor });
      shown = shown.concat(page.executions);
      draw();
    } finally { more.disabled = false; }
  });
  draw();
  clear(main).append(h("h1", null, "Executions"),
    shown.length ? h("div", null, holder, pager) : h("p", { class: "muted" }, "No executions yet. Try `factflow demo`."));
  let timer = null;
  let stopped = false;
  const delay = (list) => (list.some((record) => CHANGING.has(record.status)) ? RUNNING_REFRESH_MS : IDLE_REFRESH_MS);
  const refresh = async () => {
    let next = IDLE_REFRESH_MS;
    try {
      const since = changedSince(shown);
      const fresh = await api.executions(since ? { since, limit: MAX_PAGE } : { limit: PAGE_SIZE });
      if (stopped) return;
      if (!holder.isConnected) clear(main).append(h("h1", null, "Executions"), h("div", null, holder, pager));
      if (since && !fresh.next_cursor) shown = merge(shown, fresh.executions, since);
      else { page = fresh; shown = fresh.executions; }
      draw();
      next = delay(shown);
    } catch (_) { /* keep the last good table; try again */ }
    if (!stopped) timer = setTimeout(refresh, next);
  };
  timer = setTimeout(refresh, delay(shown));
  return () => { stopped = true; clearTimeout(timer); };
}
