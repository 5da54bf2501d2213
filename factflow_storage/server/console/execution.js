// One execution: its record, its pipeline (graph and stage sizes), its routes, what is
// being written now, and the hand-off download. While it runs, one event stream feeds
// every part of the view.
import { api } from "./api.js";
import { badge, clear, h, time } from "./dom.js";
import { listingSection } from "./browse.js";
import { archivePanel } from "./archive.js";
import { livePanel } from "./live.js";
import { pipelinePanel } from "./pipeline.js";
import { retentionPanel } from "./retention.js";
import { openStream } from "./stream.js";

export async function renderExecution(main, route, ctx) {
  const id = route.arg;
  ctx.setCrumbs([["executions", "#/"], [id, null]]);
  const prefix = `executions/${id}/`;
  const pipeline = pipelinePanel(id);
  const [record, listing] = await Promise.all([
    api.execution(id).catch((err) => (err.status === 404 ? null : Promise.reject(err))),
    listingSection(prefix, undefined, { filters: true }),
  ]);
  // The graph lists the whole execution: on a big one the view shows first, then the graph.
  pipeline.load();
  const status = h("span", { id: "execution-status" }, badge(record ? record.status : null));
  const finished = h("span", { id: "execution-finished" }, record && record.finished_at ? time(record.finished_at) : "—");
  const countCell = h("dd", { id: "execution-count" }, record?.object_count ?? "—");
  const summary = h("dl", { class: "row" },
    h("dt", { class: "muted" }, "Status"), h("dd", null, status),
    h("dt", { class: "muted" }, "Started"), h("dd", null, record ? time(record.started_at) : "—"),
    h("dt", { class: "muted" }, "Finished"), h("dd", null, finished),
    h("dt", { class: "muted" }, "Objects"), countCell);
  const cleanups = [pipeline.cleanup];
  const onFinished = async (finalStatus) => {
    clear(status).append(badge(finalStatus));
    pipeline.setRunning(false);
    pipeline.load();
    try {
      const fresh = await api.execution(id);
      clear(finished).append(fresh.finished_at ? time(fresh.finished_at) : "—");
      countCell.replaceChildren(String(fresh.object_count ?? "—"));
    } catch (_) { /* the badge already says it */ }
  };
  const parts = [h("h1", { class: "mono" }, id), summary];
  // The server refuses to pack an execution that is being deleted (or gone).
  const archive = record && record.status !== "deleting" ? archivePanel(id) : null;
  if (archive) {
    cleanups.push(archive.cleanup);
    parts.push(archive.node);
  }
  if (record && record.status === "running") {
    const live = livePanel();
    cleanups.push(live.cleanup);
    parts.push(live.node);
    pipeline.setRunning(true);
    const showTotal = () => {
      const total = pipeline.totalObjects();
      if (total !== null) countCell.replaceChildren(String(total));
    };
    // From the current state: the counts, then only new writes (a big execution opens at once).
    cleanups.push(openStream(id, {
      replay: "counts",
      onState: live.onState,
      onCounts: (data) => {
        live.onCounts(data);
        pipeline.onCounts(data);
        // A route begun between the listing above and the stream's start shows too.
        for (const row of data.routes) if (row.route_id) listing.addObject({ key: `${prefix}${row.route_id}/`, size: 0 });
        showTotal();
      },
      onObject: (event) => {
        live.onObject(event);
        pipeline.onObject(event);
        listing.addObject(event);
        showTotal();
      },
      onCompleted: (data) => { live.onCompleted(data); onFinished(data.status); },
    }));
  }
  const onDeleted = () => {
    clear(status).append(badge("deleted"));
    countCell.replaceChildren("0");
    clear(listing).append(h("p", { class: "muted" }, "Deleted."));
    archive?.cleanup();
    archive?.node.remove();
  };
  parts.push(pipeline.node, h("h2", null, "Routes"), listing, retentionPanel(id, record, onDeleted));
  clear(main).append(...parts);
  return () => cleanups.forEach((cleanup) => cleanup());
}
