// Executions, newest first; the list refreshes itself (often while one is running).
import { api } from "./api.js";
import { badge, clear, h, time } from "./dom.js";
import { href } from "./router.js";

const RUNNING_REFRESH_MS = 2000;
const IDLE_REFRESH_MS = 10000;

function duration(record) {
  if (!record.started_at) return "";
  const end = record.finished_at ? new Date(record.finished_at) : new Date();
  const seconds = Math.max(0, (end - new Date(record.started_at)) / 1000);
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function table(executions) {
  const sorted = [...executions].sort((a, b) => String(b.started_at || "").localeCompare(String(a.started_at || "")));
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
  const { executions } = await api.executions();
  const holder = h("div", null, table(executions));
  clear(main).append(h("h1", null, "Executions"),
    executions.length ? holder : h("p", { class: "muted" }, "No executions yet. Try `factflow demo`."));
  let timer = null;
  let stopped = false;
  const delay = (list) => (list.some((record) => record.status === "running") ? RUNNING_REFRESH_MS : IDLE_REFRESH_MS);
  const refresh = async () => {
    let next = IDLE_REFRESH_MS;
    try {
      const fresh = await api.executions();
      if (stopped) return;
      if (!holder.isConnected) clear(main).append(h("h1", null, "Executions"), holder);
      clear(holder).append(table(fresh.executions));
      next = delay(fresh.executions);
    } catch (_) { /* keep the last good table; try again */ }
    if (!stopped) timer = setTimeout(refresh, next);
  };
  timer = setTimeout(refresh, delay(executions));
  return () => { stopped = true; clearTimeout(timer); };
}
