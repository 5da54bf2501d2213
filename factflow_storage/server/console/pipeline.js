// The execution's pipeline panel: the graph and its stage table, kept current from the
// view's event stream. The stream starts with the counts per stage when it opened, then
// sends each new write: counts shown are the larger of the graph API's (listed when the
// view opened, again after new writes) and the stream's (its counts plus the new keys). A
// stage the graph does not know yet (or a new edge) fetches the graph again.
import { api } from "./api.js";
import { clear, errorBox, h, humanSize } from "./dom.js";
import { drawGraph, stageTable } from "./graph.js";

const RECEIVING_MS = 30000;
const REFETCH_MS = 1000;

export function pipelinePanel(executionId) {
  const holder = h("div", { class: "graph-wrap", id: "graph-holder" });
  const table = h("div", { id: "stage-table" });
  const node = h("section", { id: "pipeline", "aria-label": "Pipeline", "aria-busy": "true" },
    h("h2", null, "Pipeline"), holder, h("h2", null, "Stages"), table);
  const base = new Map(); // stage id -> { objects, bytes } when the stream opened
  const seen = new Map(); // stage id -> Map(key -> size) of the writes since
  const lastWrite = new Map(); // stage id -> ms of its newest write seen live
  let graph = null;
  let running = false;
  let refetch = null;
  let ticker = null;
  let stopped = false;

  const streamed = (id) => {
    const keys = seen.get(id) || new Map();
    const start = base.get(id) || { objects: 0, bytes: 0 };
    return { objects: start.objects + keys.size,
      bytes: start.bytes + [...keys.values()].reduce((sum, size) => sum + size, 0) };
  };
  const merged = () => ({
    ...graph,
    nodes: graph.nodes.map((one) => {
      if (!seen.has(one.id) && !base.has(one.id)) return { ...one, receiving: running && one.receiving };
      const { objects, bytes } = streamed(one.id);
      const recent = Date.now() - (lastWrite.get(one.id) || 0) < RECEIVING_MS;
      return { ...one, objects: Math.max(one.objects, objects), bytes: objects >= one.objects ? bytes : one.bytes,
        receiving: running && (recent || one.receiving) };
    }),
  });
  const draw = () => {
    if (!graph || stopped) return;
    const view = merged();
    clear(holder).append(view.nodes.length ? drawGraph(executionId, view)
      : h("p", { class: "muted", id: "graph-empty" }, "No stages yet."));
    clear(table).append(stageTable(executionId, view));
    node.dataset.stages = String(view.nodes.length);
    node.dataset.edges = String(view.edges.length);
    node.dataset.objects = String(view.nodes.reduce((sum, one) => sum + one.objects, 0));
  };
  const load = async () => {
    refetch = null;
    try {
      graph = await api.graph(executionId);
      draw();
    } catch (err) {
      if (!stopped) clear(holder).append(errorBox(err));
    } finally {
      node.removeAttribute("aria-busy");
      node.dataset.loaded = "true";
    }
  };
  const soon = () => { if (refetch === null && !stopped) refetch = setTimeout(load, REFETCH_MS); };
  let redraw = null;
  const later = () => { if (redraw === null) redraw = setTimeout(() => { redraw = null; draw(); }, 100); };

  return {
    node,
    load,
    setRunning: (value) => {
      running = value;
      clearInterval(ticker);
      // Marks fade when a stage stops receiving, without an event to say so.
      ticker = value ? setInterval(draw, RECEIVING_MS / 3) : null;
      draw();
    },
    onCounts: (data) => {
      for (const row of data.routes) {
        if (!row.route_id || !row.stage) continue;
        const id = `${row.route_id}/${row.stage}`;
        base.set(id, { objects: row.objects, bytes: row.bytes });
        if (graph && !graph.nodes.some((one) => one.id === id)) soon();
      }
      later();
    },
    onObject: (event) => {
      const id = `${event.route_id}/${event.stage}`;
      if (!event.route_id || !event.stage) return;
      if (!seen.has(id)) seen.set(id, new Map());
      seen.get(id).set(event.key, event.size);
      const written = Date.parse(event.created_at);
      if (Date.now() - written < RECEIVING_MS) lastWrite.set(id, Math.max(lastWrite.get(id) || 0, written));
      if (graph && !graph.nodes.some((one) => one.id === id)) soon();
      else if (Date.now() - written < RECEIVING_MS) soon(); // a live write may bring a new edge
      later();
    },
    // Stages the stream has seen and the graph not yet count too.
    totalObjects: () => {
      if (!graph) return null;
      const shown = merged().nodes.reduce((sum, one) => sum + one.objects, 0);
      const known = new Set(graph.nodes.map((one) => one.id));
      const ids = new Set([...base.keys(), ...seen.keys()].filter((id) => !known.has(id)));
      return shown + [...ids].reduce((sum, id) => sum + streamed(id).objects, 0);
    },
    cleanup: () => { stopped = true; clearTimeout(refetch); clearTimeout(redraw); clearInterval(ticker); },
  };
}
