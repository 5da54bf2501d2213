// Executions, newest first, a page at a time ("Older executions" appends the next); the
// list refreshes itself (often while one is running), asking again for the rows shown.
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
  const delay = (list) => (list.some((record) => record.status === "running") ? RUNNING_REFRESH_MS : IDLE_REFRESH_MS);
  const refresh = async () => {
    let next = IDLE_REFRESH_MS;
    try {
      // The rows on screen, newest first, in one request (one listing of the index).
      const fresh = await api.executions({ limit: Math.min(Math.max(shown.length, PAGE_SIZE), MAX_PAGE) });
      if (stopped) return;
      if (!holder.isConnected) clear(main).append(h("h1", null, "Executions"), h("div", null, holder, pager));
      page = fresh;
      shown = fresh.executions;
      draw();
      next = delay(shown);
    } catch (_) { /* keep the last good table; try again */ }
    if (!stopped) timer = setTimeout(refresh, next);
  };
  timer = setTimeout(refresh, delay(shown));
  return () => { stopped = true; clearTimeout(timer); };
}
